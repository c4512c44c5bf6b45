#!/usr/bin/env bash
# Throughput benchmark: `ocicert scan --no-cache` of a synthetic OCI archive (the layer cache
# would answer a re-run from disk) against the floor of simply
# decompressing the same layers with `gzip -dc`, one after another.
#
#   scripts/bench-scan.sh       (from anywhere; scripts/bench.sh runs it with the other benchmarks)
#
# Environment: BENCH_SIZE_MB (default 220), BENCH_FILES (6000), BENCH_LAYERS (4), BENCH_SEED (1),
# BENCH_RUNS (3, best of). The image is made once by scripts/make-image.py in target/bench/ and
# regenerated only when those parameters or make-image.py change. Results are printed as a table
# and appended as one JSON line to target/bench/history.jsonl; the last line of stdout is that JSON.
# Needs: cargo, python3, gzip, GNU time at /usr/bin/time (for peak RSS).
set -euo pipefail
cd "$(dirname "$0")/.."

SIZE_MB="${BENCH_SIZE_MB:-220}"
FILES="${BENCH_FILES:-6000}"
LAYERS="${BENCH_LAYERS:-4}"
SEED="${BENCH_SEED:-1}"
RUNS="${BENCH_RUNS:-3}"

BENCH_DIR=target/bench
IMAGE="$BENCH_DIR/bench.tar"
LAYER_DIR="$BENCH_DIR/layers"
BIN="${CARGO_TARGET_DIR:-target}/release/ocicert"

# 1. Build.
cargo build --release

# 2. Generate the image if it is missing or was made with other parameters.
mkdir -p "$BENCH_DIR"
params="size_mb=$SIZE_MB files=$FILES layers=$LAYERS seed=$SEED generator=$(sha256sum scripts/make-image.py | cut -c1-16)"
if [[ ! -f "$IMAGE" || ! -f "$BENCH_DIR/bench.params" || "$(cat "$BENCH_DIR/bench.params")" != "$params" ]]; then
    echo "generating $IMAGE ($params)" >&2
    rm -f "$BENCH_DIR/bench.params"
    python3 scripts/make-image.py bench "$IMAGE" \
        --size-mb "$SIZE_MB" --files "$FILES" --layers "$LAYERS" --seed "$SEED"
    echo "$params" > "$BENCH_DIR/bench.params"
fi

# 3. Extract the layer blobs (in manifest order) for the gzip floor.
rm -rf "$LAYER_DIR"
mkdir -p "$LAYER_DIR"
python3 - "$IMAGE" "$LAYER_DIR" <<'PY'
import json, os, shutil, sys, tarfile
image, out = sys.argv[1], sys.argv[2]
with tarfile.open(image) as tar:
    def blob(digest):
        return tar.extractfile("blobs/sha256/" + digest.split(":", 1)[1])
    index = json.load(tar.extractfile("index.json"))
    manifest = json.load(blob(index["manifests"][0]["digest"]))
    for n, layer in enumerate(manifest["layers"]):
        with blob(layer["digest"]) as src, open(os.path.join(out, "%03d.tar.gz" % n), "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
PY
layers=("$LAYER_DIR"/*.tar.gz)

# Wall seconds between two `date +%s.%N` stamps.
elapsed() { python3 -c 'import sys; print("%.3f" % (float(sys.argv[2]) - float(sys.argv[1])))' "$1" "$2"; }
# Smallest of the arguments.
best() { python3 -c 'import sys; print("%.3f" % min(map(float, sys.argv[1:])))' "$@"; }

uncompressed_bytes=0
for f in "${layers[@]}"; do
    uncompressed_bytes=$((uncompressed_bytes + $(gzip -dc "$f" | wc -c)))
done
compressed_bytes=$(stat -c %s "${layers[@]}" | awk '{s += $1} END {print s}')

gzip_floor() {
    for f in "${layers[@]}"; do
        gzip -dc "$f" > /dev/null
    done
}
scan() {
    "$BIN" scan "oci-archive:$IMAGE" --no-cache --format json --fail-on never > /dev/null
}

gzip_times=()
for ((i = 0; i < RUNS; i++)); do
    t0=$(date +%s.%N); gzip_floor; t1=$(date +%s.%N)
    gzip_times+=("$(elapsed "$t0" "$t1")")
done
gzip_s=$(best "${gzip_times[@]}")

scan_times=()
for ((i = 0; i < RUNS; i++)); do
    t0=$(date +%s.%N); scan; t1=$(date +%s.%N)
    scan_times+=("$(elapsed "$t0" "$t1")")
done
scan_s=$(best "${scan_times[@]}")

# 4. Peak memory, from one more run under GNU time.
time_log="$BENCH_DIR/time-v.log"
/usr/bin/time -v -o "$time_log" "$BIN" scan "oci-archive:$IMAGE" --no-cache --format json --fail-on never > /dev/null
rss_kb=$(awk -F: '/Maximum resident set size/ {gsub(/ /, "", $2); print $2}' "$time_log")

# 5. Report.
rev=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
if [[ "$rev" != unknown && -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]]; then
    rev="$rev-dirty"
fi
python3 - "$uncompressed_bytes" "$compressed_bytes" "$gzip_s" "$scan_s" "$rss_kb" "$rev" \
    "$SIZE_MB" "$FILES" "$LAYERS" "$SEED" "$RUNS" "$(nproc)" "${gzip_times[*]}" "${scan_times[*]}" \
    "$BENCH_DIR/history.jsonl" <<'PY'
import datetime, json, sys
(uncompressed, compressed, gzip_s, scan_s, rss_kb, rev, size_mb, files, layers, seed, runs, cpus,
 gzip_runs, scan_runs, history) = sys.argv[1:]
mib = int(uncompressed) / 2**20
gzip_s, scan_s = float(gzip_s), float(scan_s)
row = {
    "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    "git_rev": rev,
    "uncompressed_mib": round(mib, 1),
    "compressed_mib": round(int(compressed) / 2**20, 1),
    "gzip_s": gzip_s,
    "scan_s": scan_s,
    "ratio": round(scan_s / gzip_s, 2) if gzip_s else None,
    "scan_mib_per_s": round(mib / scan_s, 1) if scan_s else None,
    "peak_rss_mib": round(int(rss_kb) / 1024, 1),
    "gzip_runs_s": [float(t) for t in gzip_runs.split()],
    "scan_runs_s": [float(t) for t in scan_runs.split()],
    "image": {"size_mb": float(size_mb), "files": int(files), "layers": int(layers), "seed": int(seed)},
    "cpus": int(cpus),
}
print(f"best of {runs}, {row['cpus']} CPUs, rev {rev}")
table = [
    ("uncompressed MiB", f"{row['uncompressed_mib']:.1f}"),
    ("gzip -dc floor s", f"{gzip_s:.3f}"),
    ("scan s", f"{scan_s:.3f}"),
    ("ratio scan/gzip", f"{row['ratio']:.2f}" if row["ratio"] is not None else "n/a"),
    ("scan MiB/s", f"{row['scan_mib_per_s']:.1f}" if row["scan_mib_per_s"] is not None else "n/a"),
    ("peak RSS MiB", f"{row['peak_rss_mib']:.1f}"),
]
width = max(len(k) for k, _ in table)
for key, value in table:
    print(f"  {key:<{width}}  {value:>10}")
with open(history, "a") as f:
    f.write(json.dumps(row) + "\n")
print(f"appended to {history}")
print(json.dumps(row))
PY
