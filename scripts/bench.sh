#!/usr/bin/env bash
# The performance suite: one command measures every figure the issues promise, on generated
# inputs of fixed seed, prints each next to its target, and appends one JSON line per run to
# bench/results.jsonl (committed, so the history travels with the code).
#
#   scripts/bench.sh            all figures, including a clean release build (~15 min on 2 cores)
#   scripts/bench.sh --quick    everything but the clean build
#
# The parts can be run alone: bench-scan.sh (scan vs the `gzip -dc` floor, MiB/s, peak RSS),
# bench-registry.sh (cold scan vs download+decompress, warm re-scan), bench-inject.sh (wall time,
# bytes uploaded), bench-stub.sh (size, RSS, start-up), bench-serve.sh (webhook deliveries/s),
# bench-provenance.sh (what package owners add to a scan of a real Debian root filesystem).
# Each prints its figures as a JSON object on its last line of stdout. BENCH_SEED (default 1)
# seeds the generated image; the other BENCH_* variables are passed through.
# Needs what the parts need: docker-registry, skopeo, wrk, hyperfine (optional), GNU time.
set -euo pipefail
cd "$(dirname "$0")/.."
quick=false
[ "${1:-}" = "--quick" ] && quick=true
export BENCH_SEED="${BENCH_SEED:-1}"
mkdir -p target/bench bench
logs=target/bench/suite
rm -rf "$logs"
mkdir -p "$logs"

cargo build --release --locked --quiet
export OCICERT_BIN="${CARGO_TARGET_DIR:-target}/release/ocicert"

part() { # part NAME SCRIPT: runs it, keeps its log, and prints its JSON line
  echo "== $1" >&2
  if ! "./scripts/$2" > "$logs/$1.out" 2> "$logs/$1.err"; then
    echo "$2 failed; see $logs/$1.err" >&2
    tail -n 20 "$logs/$1.err" >&2
    echo '{}'
    return
  fi
  grep '^{' "$logs/$1.out" | tail -n 1
}
scan=$(part scan bench-scan.sh)
registry=$(part registry bench-registry.sh)
inject=$(part inject bench-inject.sh)
stub=$(part stub bench-stub.sh)
serve=$(part serve bench-serve.sh)
provenance=$(part provenance bench-provenance.sh)

build='{}'
if ! $quick; then
  echo "== clean build (cargo build --release --locked, empty target dir)" >&2
  clean=$(mktemp -d)
  t0=$(date +%s.%N)
  CARGO_TARGET_DIR="$clean" cargo build --release --locked --quiet
  t1=$(date +%s.%N)
  rm -rf "$clean"
  build=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "{\"clean_release_build_s\": %.1f}", b - a }')
fi

python3 - "$scan" "$registry" "$inject" "$stub" "$serve" "$build" "$provenance" <<'PY'
import datetime, json, os, subprocess, sys
scan, registry, inject, stub, serve, build, provenance = (json.loads(a) for a in sys.argv[1:8])
def get(d, k, scale=1.0):
    return round(d[k] * scale, 4) if k in d and d[k] is not None else None
warm_over_cold = get(registry, "warm_over_cold")
figures = [
    # name, value, unit, target, ok-when
    ("scan time / gzip -dc floor", get(scan, "ratio"), "x", "<= 1.0", lambda v: v <= 1.0),
    ("scan throughput", get(scan, "scan_mib_per_s"), "MiB/s", "(report)", None),
    ("scan peak RSS", get(scan, "peak_rss_mib"), "MiB", "<= 150", lambda v: v <= 150),
    ("registry cold scan / (download + gzip -dc)", get(registry, "cold_over_floor"), "x", "<= 1.0", lambda v: v <= 1.0),
    ("registry warm re-scan / cold scan", warm_over_cold, "x", "< 0.05", lambda v: v < 0.05),
    ("registry warm re-scan", get(registry, "warm_s"), "s", "(report)", None),
    ("inject wall time (cold cache)", get(inject, "cold_s"), "s", "< 2", lambda v: v < 2),
    ("inject bytes stored beyond the new layer",
     (inject["cold_new_bytes"] - inject["layer_bytes"]) if "cold_new_bytes" in inject else None,
     "B", "< 1000000", lambda v: v < 1_000_000),
    ("stub size amd64 (stripped)", get(stub, "amd64_bytes", 1 / 2**20), "MiB", "<= 4 MB", lambda v: v * 2**20 <= 4_000_000),
    ("stub size arm64 (stripped)", get(stub, "arm64_bytes", 1 / 2**20), "MiB", "<= 4 MB", lambda v: v * 2**20 <= 4_000_000),
    ("stub peak RSS (EST enrollment, RSA 3072)", get(stub, "enroll_rsa_rss_kib", 1 / 1024), "MiB", "<= 20", lambda v: v <= 20),
    ("stub start-up (cert reused)", get(stub, "startup_ms"), "ms", "<= 50", lambda v: v <= 50),
    ("webhook deliveries accepted", get(serve, "deliveries_per_s"), "/s", ">= 1000", lambda v: v >= 1000),
    ("push -> stored (small image)", get(serve, "small_push_to_stored_s"), "s", "(report)", None),
    ("package owners' share of a Debian rootfs scan", get(provenance, "cost_percent"), "%", "<= 10", lambda v: v <= 10),
    ("clean release build", get(build, "clean_release_build_s"), "s", "<= 900", lambda v: v <= 900),
]
rev = subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True, text=True).stdout.strip()
row = {
    "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    "git_rev": rev, "cpus": os.cpu_count(), "seed": int(os.environ["BENCH_SEED"]),
    "figures": {}, "raw": {"scan": scan, "registry": registry, "inject": inject, "stub": stub, "serve": serve, "build": build, "provenance": provenance},
}
width = max(len(f[0]) for f in figures)
print(f"\n{'figure':<{width}}  {'value':>12}  {'unit':<6} {'target':<10} status")
for name, value, unit, target, ok in figures:
    if value is None:
        status, shown = "not run", "-"
    else:
        shown = f"{value:,.3f}".rstrip("0").rstrip(".")
        status = "-" if ok is None else ("ok" if ok(value) else "MISSED")
    row["figures"][name] = {"value": value, "unit": unit, "target": target, "status": status}
    print(f"{name:<{width}}  {shown:>12}  {unit:<6} {target:<10} {status}")
with open("bench/results.jsonl", "a") as f:
    f.write(json.dumps(row) + "\n")
print("\nappended to bench/results.jsonl")
PY
