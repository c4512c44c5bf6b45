#!/usr/bin/env bash
# `ocicert serve` benchmark against Debian's docker-registry on 127.0.0.1, SQLite store.
#   1. deliveries/s: `wrk` (Debian package `wrk`, keep-alive, Lua POST script) sends registry
#      notifications, each naming a new digest, to a service with `workers = 0` (accept and
#      enqueue durably, scan nothing); every 202 is a job row committed to SQLite.
#   2. push→stored latency of a small image: `skopeo copy` to the registry, then poll
#      /api/images/<digest> until the report is there (registry notification → queue → scan).
#   3. second image on an already-scanned base: a ~BENCH_SIZE_MB image is pushed and scanned,
#      then the same image plus one small layer (appended by a few lines of Python: umoci 0.4.7's
#      `insert` wrote a truncated layer here); the second scan reads only
#      the new layer (the layer cache holds the others).
# Builds the debug binary unless OCICERT_BIN is set (dependencies are optimised in dev builds).
# Appends a JSON line to target/bench/history-serve.jsonl.
set -euo pipefail
cd "$(dirname "$0")/.."
for program in docker-registry skopeo wrk curl; do
  command -v "$program" >/dev/null || { echo "missing $program (apt-get install docker-registry skopeo wrk curl)" >&2; exit 2; }
done
if [ -z "${OCICERT_BIN:-}" ]; then
  cargo build --quiet
  OCICERT_BIN="${CARGO_TARGET_DIR:-target}/debug/ocicert"
fi
out=target/bench/serve
rm -rf "$out"; mkdir -p "$out"
out=$(cd "$out" && pwd)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done; }
trap cleanup EXIT
wait_http() { for _ in $(seq 300); do curl -sf -o /dev/null "$1" && return 0; sleep 0.1; done; echo "$1 did not come up" >&2; exit 1; }

reg_port=$(free_port); serve_port=$(free_port); ingest_port=$(free_port)
export OCICERT_HOOK_SECRET="bench-secret-$RANDOM$RANDOM"
cat > "$out/registry.yml" <<YAML
version: 0.1
log: {level: error}
storage: {filesystem: {rootdirectory: $out/registry}}
http: {addr: 127.0.0.1:$reg_port}
notifications:
  events: {includereferences: true}
  endpoints:
    - name: ocicert
      url: http://127.0.0.1:$serve_port/hooks/distribution
      headers: {Authorization: [Bearer $OCICERT_HOOK_SECRET]}
      timeout: 2s
      threshold: 5
      backoff: 1s
YAML
docker-registry serve "$out/registry.yml" > "$out/registry.log" 2>&1 & pids+=($!)
config() { # workers
  cat <<TOML
workers = $1
[hooks.distribution]
secret_env = "OCICERT_HOOK_SECRET"
[[registry]]
host = "127.0.0.1:$reg_port"
repositories = ["bench/*"]
insecure = true
TOML
}
config 2 > "$out/serve.toml"; config 0 > "$out/ingest.toml"
"$OCICERT_BIN" serve --config "$out/serve.toml" --data-dir "$out/data" --listen "127.0.0.1:$serve_port" 2> "$out/serve.log" & pids+=($!)
"$OCICERT_BIN" serve --config "$out/ingest.toml" --data-dir "$out/ingest" --listen "127.0.0.1:$ingest_port" 2> "$out/ingest.log" & pids+=($!)
wait_http "http://127.0.0.1:$reg_port/v2/"; wait_http "http://127.0.0.1:$serve_port/readyz"; wait_http "http://127.0.0.1:$ingest_port/readyz"

# 1. Deliveries per second.
cat > "$out/deliver.lua" <<LUA
local counter = 0
local threads = 0
local body = '{"events":[{"action":"push","target":{"mediaType":"application/vnd.oci.image.manifest.v1+json",'
  .. '"digest":"sha256:%s","repository":"bench/app","tag":"v1"},"request":{"host":"127.0.0.1:$reg_port"}}]}'
-- Each thread gets its own digest prefix, so every request names a new image.
function setup(thread)
  threads = threads + 1
  thread:set("id", threads)
end
function request()
  counter = counter + 1
  return wrk.format("POST", "/hooks/distribution",
    {["Authorization"] = "Bearer $OCICERT_HOOK_SECRET", ["Content-Type"] = "application/json"},
    string.format(body, string.format("%08d%056d", id, counter)))
end
LUA
wrk -t2 -c32 -d"${BENCH_SECONDS:-10}"s -s "$out/deliver.lua" "http://127.0.0.1:$ingest_port" > "$out/wrk.txt"
rate=$(awk '/Requests\/sec/ {print $2}' "$out/wrk.txt")
non2xx=$(awk '/Non-2xx/ {print $5}' "$out/wrk.txt"); non2xx=${non2xx:-0}
queued=$(curl -s "http://127.0.0.1:$ingest_port/metrics" | awk -F' ' '/^ocicert_jobs\{kind="scan",state="queued"\}/ {print $2}')
total=$(awk '/requests in/ {print $1}' "$out/wrk.txt")

# 2. push → stored latency, small image.
python3 scripts/make-image.py demo "$out/small.tar" >/dev/null
push() { skopeo --insecure-policy copy --quiet --dest-tls-verify=false "$1" "docker://127.0.0.1:$reg_port/$2"; }
digest_of() { skopeo inspect --tls-verify=false "docker://127.0.0.1:$reg_port/$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Digest"])'; }
stored() { # push SOURCE REPO:TAG, print seconds until the report is stored
  local t0 t1 digest; t0=$(now); push "$1" "$2"; digest=$(digest_of "$2")
  until [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$serve_port/api/images/$digest")" = 200 ]; do sleep 0.05; done
  t1=$(now); elapsed "$t0" "$t1"
}
small=$(stored "oci-archive:$out/small.tar" bench/small:v1)

# 3. A large base, then the same base plus one small layer.
python3 scripts/make-image.py bench "$out/base.tar" --size-mb "${BENCH_SIZE_MB:-120}" --files 3000 --layers 3 >/dev/null
first=$(stored "oci-archive:$out/base.tar" bench/app:v1)
skopeo --insecure-policy copy --quiet "oci-archive:$out/base.tar" "oci:$out/layout:v1"
python3 - "$out/layout" <<'PY'
# Appends one small gzip layer (/app/new.txt) to the image tagged v1 and tags the result v2.
import gzip, hashlib, io, json, os, sys, tarfile
root = sys.argv[1]
def blob(data):
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    open(os.path.join(root, "blobs/sha256", digest[7:]), "wb").write(data)
    return digest
def read(digest):
    return open(os.path.join(root, "blobs/sha256", digest[7:]), "rb").read()
index = json.load(open(os.path.join(root, "index.json")))
descriptor = index["manifests"][0]
manifest = json.loads(read(descriptor["digest"]))
config = json.loads(read(manifest["config"]["digest"]))
content = os.urandom(48 * 1024).hex().encode()
raw = io.BytesIO()
with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
    info = tarfile.TarInfo("app/new.txt"); info.size = len(content); info.mtime = 0
    tar.addfile(info, io.BytesIO(content))
layer = gzip.compress(raw.getvalue(), mtime=0)
config["rootfs"]["diff_ids"].append("sha256:" + hashlib.sha256(raw.getvalue()).hexdigest())
config.setdefault("history", []).append({"created_by": "COPY new.txt /app/new.txt"})
config_bytes = json.dumps(config).encode()
manifest["config"] = dict(manifest["config"], digest=blob(config_bytes), size=len(config_bytes))
manifest["layers"].append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": blob(layer), "size": len(layer)})
manifest_bytes = json.dumps(manifest).encode()
index["manifests"].append(dict(descriptor, digest=blob(manifest_bytes), size=len(manifest_bytes),
                               annotations={"org.opencontainers.image.ref.name": "v2"}))
json.dump(index, open(os.path.join(root, "index.json"), "w"))
PY
second=$(stored "oci:$out/layout:v2" bench/app:v2)

python3 - "$rate" "$total" "$non2xx" "${queued:-0}" "$small" "$first" "$second" <<'PY' | tee -a target/bench/history-serve.jsonl
import json, subprocess, sys, time
rate, total, non2xx, queued = float(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(float(sys.argv[4]))
small, first, second = map(float, sys.argv[5:8])
rev = subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True, text=True).stdout.strip()
print(f"  deliveries accepted  {rate:.0f}/s  (wrk -t2 -c32, {total} requests, {non2xx} non-2xx, {queued} jobs queued in SQLite)", file=sys.stderr)
print(f"  push -> stored       {small:.2f}s  (small 3-layer demo image)", file=sys.stderr)
print(f"  large image, cold    {first:.2f}s  (push + scan)", file=sys.stderr)
print(f"  second image, same base  {second:.2f}s  (push + scan of one new layer)", file=sys.stderr)
print(json.dumps({"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "git_rev": rev,
    "deliveries_per_s": rate, "requests": total, "non_2xx": non2xx, "jobs_queued": queued,
    "small_push_to_stored_s": small, "base_push_to_stored_s": first, "second_image_s": second}))
PY
