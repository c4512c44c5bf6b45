#!/usr/bin/env bash
# What package owners cost: `ocicert scan` of a real Debian 12 root filesystem (debootstrap
# minbase plus ca-certificates, curl, openssl, python3-certifi: the stock image of issue 31) with
# its dpkg database, against the same tree without /var/lib/dpkg, where there is nothing to own
# files. The difference is reading the database, building the index and judging each finding;
# hashing files with detections happens in both runs, and is part of the scan either way.
#
#   scripts/bench-provenance.sh     (scripts/bench.sh runs it with the other benchmarks)
#
# Environment: BENCH_RUNS (5, best of). The rootfs is the one the tests cache
# (tests/it/rootfs.rs: $OCICERT_TEST_CACHE, else ~/.cache/ocicert-tests); it is made with
# debootstrap when missing. Prints a table; the last line of stdout is one JSON line, also
# appended to target/bench/history.jsonl. Needs: cargo, debootstrap (first run), tar, python3.
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS="${BENCH_RUNS:-5}"
BIN="${CARGO_TARGET_DIR:-target}/release/ocicert"
BENCH_DIR=target/bench/provenance
cargo build --release

packages="ca-certificates,curl,openssl,python3-certifi"
hash=$(printf '%s' "bookworm minbase $packages" | sha256sum | cut -c1-16)
cache="${OCICERT_TEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ocicert-tests}"
tar_file="$cache/debian-bookworm-$hash.tar"
if [[ ! -f "$tar_file" ]]; then
    mkdir -p "$cache"
    building=$(mktemp -d)
    debootstrap --variant=minbase --include="$packages" bookworm "$building" >&2
    tar -C "$building" --numeric-owner --sort=name -cf "$tar_file.part" .
    mv "$tar_file.part" "$tar_file"
    rm -rf "$building"
fi

rm -rf "$BENCH_DIR"
mkdir -p "$BENCH_DIR/with" "$BENCH_DIR/without"
tar -C "$BENCH_DIR/with" -xf "$tar_file" 2>/dev/null || true
tar -C "$BENCH_DIR/without" -xf "$tar_file" --exclude=./var/lib/dpkg 2>/dev/null || true

best_of() {
    local dir=$1 best=""
    for ((i = 0; i < RUNS; i++)); do
        t0=$(date +%s.%N)
        "$BIN" scan "dir:$dir" --format json --fail-on never > /dev/null
        t1=$(date +%s.%N)
        best=$(python3 -c 'import sys; t = float(sys.argv[2]) - float(sys.argv[1]); b = sys.argv[3]; print("%.4f" % (t if not b else min(t, float(b))))' "$t0" "$t1" "$best")
    done
    echo "$best"
}

with=$(best_of "$BENCH_DIR/with")
without=$(best_of "$BENCH_DIR/without")
owned=$("$BIN" scan "dir:$BENCH_DIR/with" --format json --fail-on never | python3 -c 'import json, sys; r = json.load(sys.stdin); print(sum(1 for f in r["images"][0]["findings"] if f["location"].get("owner")))')
json=$(python3 - "$with" "$without" "$owned" <<'PY'
import json, sys
with_, without, owned = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
cost = (with_ - without) / without * 100
print(json.dumps({"bench": "provenance", "scan_with_owners_s": with_, "scan_without_database_s": without, "cost_percent": round(cost, 1), "owned_findings": owned}))
PY
)
printf '%-34s %8s s\n' "scan with dpkg database" "$with" "scan without /var/lib/dpkg" "$without"
python3 -c 'import json, sys; d = json.loads(sys.argv[1]); print("%-34s %8.1f %%  (%d findings owned)" % ("cost of owners", d["cost_percent"], d["owned_findings"]))' "$json"
mkdir -p target/bench
echo "$json" >> target/bench/history.jsonl
echo "$json"
