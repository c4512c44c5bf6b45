#!/usr/bin/env bash
# Injection benchmark: a CA into the ~220 MiB bench image in a local registry, pushed back to a
# new tag. Reports wall time (cold: empty layer cache; warm: after a scan filled it) and the
# bytes the registry stored anew for each push (new blob files in its storage), next to the size
# of the new layer itself. Target: < 2 s and < 1 MB uploaded beyond the new layer.
source "$(dirname "$0")/bench-lib.sh" inject
ca="$out/bench-ca.pem"
[ -f "$ca" ] || openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$out/bench-ca.key" -out "$ca" \
  -days 365 -subj "/CN=Bench Corp Root" -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign" 2>/dev/null
blobs() { find "$reg/data/docker/registry/v2/blobs" -name data | LC_ALL=C sort; }
stored_since() { comm -13 <(echo "$1") <(blobs) | xargs -r stat -c %s | awk '{ s += $1 } END { print s + 0 }'; }
rm -rf "$out/inject-cache"
before=$(blobs); t0=$(now)
./target/release/ocicert inject "$ref" --ca "$ca" --to "127.0.0.1:$port/bench/app:cold" --insecure --cache-dir "$out/inject-cache" > /dev/null 2>&1
t1=$(now); cold_bytes=$(stored_since "$before")
layer=$(skopeo inspect --raw --tls-verify=false "docker://127.0.0.1:$port/bench/app:cold" | python3 -c 'import json,sys; print(json.load(sys.stdin)["layers"][-1]["size"])')
./target/release/ocicert scan "$ref" --insecure --cache-dir "$out/inject-cache" --fail-on never > /dev/null 2>&1
before=$(blobs); t2=$(now)
./target/release/ocicert inject "$ref" --ca "$ca" --to "127.0.0.1:$port/bench/app:warm" --insecure --cache-dir "$out/inject-cache" > /dev/null 2>&1
t3=$(now); warm_bytes=$(stored_since "$before")
cold=$(elapsed "$t0" "$t1"); warm=$(elapsed "$t2" "$t3")
echo "  new layer: $layer bytes"
echo "  cold inject (empty cache): ${cold}s, registry stored $cold_bytes new bytes"
echo "  warm inject (cache filled by a scan): ${warm}s, registry stored $warm_bytes new bytes (0 = identical result, all blobs already there)"
printf '{"date":"%s","git_rev":"%s","cold_s":%s,"warm_s":%s,"cold_new_bytes":%s,"warm_new_bytes":%s,"layer_bytes":%s}\n' \
  "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$(git describe --always --dirty)" "$cold" "$warm" "$cold_bytes" "$warm_bytes" "$layer" | tee -a "$out/history-inject.jsonl"
