# Shared by the registry benchmarks (sourced, not run): builds the release binary and the bench
# image, starts a local CNCF distribution registry on a free port, and pushes the image to it.
# Sets: out, image, reg, port, ref, pid (the registry), and an EXIT trap that stops it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
out=target/bench
mkdir -p "$out"
cargo build --release --quiet
image="$out/bench.tar"
[ -f "$image" ] || python3 scripts/make-image.py bench "$image" --size-mb "${BENCH_SIZE_MB:-220}" --files "${BENCH_FILES:-6000}" --layers "${BENCH_LAYERS:-4}"
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
reg="$out/registry-$1"
rm -rf "$reg"
mkdir -p "$reg"
cat > "$reg/config.yml" <<YAML
version: 0.1
log: {level: info, formatter: json}
storage: {filesystem: {rootdirectory: $PWD/$reg/data}}
http: {addr: 127.0.0.1:$port}
YAML
docker-registry serve "$reg/config.yml" > "$reg/log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null || true' EXIT
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/v2/" >/dev/null && break; sleep 0.1; done
ref="127.0.0.1:$port/bench/app:v1"
skopeo --insecure-policy copy --quiet --dest-tls-verify=false "oci-archive:$image" "docker://$ref"
