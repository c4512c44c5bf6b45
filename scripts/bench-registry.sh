#!/usr/bin/env bash
# Registry scan benchmark: a ~220 MiB image in a local CNCF distribution registry.
#   floor = `skopeo copy` of the image to a local dir, then `gzip -dc` of its layers (one after
#           the other: download plus decompression);
#   cold  = `ocicert scan` with an empty layer cache; warm = the same scan again.
# Prints wall times, the ratios cold/floor and warm/cold, and the bytes the registry sent for each
# scan (from its access log), and appends a JSON line to target/bench/history-registry.jsonl.
source "$(dirname "$0")/bench-lib.sh" registry
rm -rf "$out/pulled" "$out/cache"

# Bytes written by the registry since line $1 of its log.
sent() { tail -n +"$1" "$reg/log" | python3 -c '
import json, sys
total = 0
for line in sys.stdin:
    try: total += int(json.loads(line).get("http.response.written", 0))
    except ValueError: pass
print(total)'; }
lines() { wc -l < "$reg/log"; }

t0=$(now); skopeo --insecure-policy copy --quiet --src-tls-verify=false "docker://$ref" "dir:$out/pulled"; t1=$(now)
for f in "$out"/pulled/*; do
  case "$(head -c2 "$f" | od -An -tx1 | tr -d ' ')" in 1f8b) gzip -dc "$f" > /dev/null ;; esac
done
t2=$(now)
floor=$(elapsed "$t0" "$t2"); download=$(elapsed "$t0" "$t1"); gunzip=$(elapsed "$t1" "$t2")

scan() { ./target/release/ocicert scan "$ref" --insecure --cache-dir "$out/cache" --format json --fail-on never > /dev/null; }
l0=$(lines); t0=$(now); scan; t1=$(now); cold_bytes=$(sent $((l0 + 1)))
l1=$(lines); t2=$(now); scan; t3=$(now); warm_bytes=$(sent $((l1 + 1)))
cold=$(elapsed "$t0" "$t1"); warm=$(elapsed "$t2" "$t3")
python3 - "$floor" "$download" "$gunzip" "$cold" "$warm" "$cold_bytes" "$warm_bytes" <<'PY' | tee -a "$out/history-registry.jsonl"
import json, subprocess, sys, time
floor, download, gunzip, cold, warm = map(float, sys.argv[1:6])
cold_bytes, warm_bytes = int(sys.argv[6]), int(sys.argv[7])
rev = subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True, text=True).stdout.strip()
print(f"  floor (skopeo copy {download:.2f}s + gzip -dc {gunzip:.2f}s)  {floor:.2f}s", file=sys.stderr)
print(f"  cold scan  {cold:.2f}s   ratio cold/floor {cold / floor:.2f}   registry sent {cold_bytes / 2**20:.1f} MiB", file=sys.stderr)
print(f"  warm scan  {warm:.3f}s   ratio warm/cold  {warm / cold:.3f}   registry sent {warm_bytes / 2**10:.1f} KiB", file=sys.stderr)
print(json.dumps({"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "git_rev": rev, "floor_s": floor,
    "skopeo_copy_s": download, "gzip_s": gunzip, "cold_s": cold, "warm_s": warm, "cold_over_floor": round(cold / floor, 3),
    "warm_over_cold": round(warm / cold, 4), "cold_bytes": cold_bytes, "warm_bytes": warm_bytes}))
PY
