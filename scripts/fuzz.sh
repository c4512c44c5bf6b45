#!/usr/bin/env bash
# Runs every fuzz target for SECONDS (default 600) each, one after the other, seeded from
# fixtures/. Crashes land in fuzz/artifacts/<target>/; copy each one into
# fixtures/fuzz-regressions/<target>/ once fixed (tests/it/fuzz_regressions.rs replays them).
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#
# cargo-fuzz needs nightly-only flags; on a stable toolchain RUSTC_BOOTSTRAP=1 unlocks them.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-600}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(pem der pkcs12 jks openssh archive layer manifest webhook)
fi
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
export RUSTC_BOOTSTRAP=1

seed() { # seed TARGET FILE...: copies fixtures into the target's corpus
  local dir="fuzz/corpus/$1"
  shift
  mkdir -p "$dir"
  for f in "$@"; do [ -f "$f" ] && cp "$f" "$dir/" || true; done
  return 0
}

oci=$(mktemp -d)
trap 'rm -rf "$oci"' EXIT
tar -xf fixtures/images/demo.tar -C "$oci"
blobs=("$oci"/blobs/sha256/*)
json_blobs=()
tar_blobs=()
for b in "${blobs[@]}"; do
  if head -c1 "$b" | grep -q '{'; then json_blobs+=("$b"); else tar_blobs+=("$b"); fi
done
regress() { [ -d "fixtures/fuzz-regressions/$1" ] && echo "fixtures/fuzz-regressions/$1"/* || true; }

seed pem fixtures/keys/*.pem fixtures/certs/*.pem fixtures/keys/*.key fixtures/negative/* $(regress pem)
seed der fixtures/keys/*.der fixtures/certs/*.der fixtures/negative/* $(regress der)
seed pkcs12 fixtures/keys/*.p12 fixtures/certs/*.p12 fixtures/keys/*.pfx $(regress pkcs12)
seed jks fixtures/keys/*.jks fixtures/certs/*.jks fixtures/keys/*.jceks $(regress jks)
# The OpenSSH detector sees the base64-decoded body of the PEM-like block.
mkdir -p fuzz/corpus/openssh
for f in fixtures/keys/openssh-*; do
  sed '1d;$d' "$f" | base64 -d > "fuzz/corpus/openssh/$(basename "$f").bin" 2>/dev/null || true
done
seed openssh fixtures/keys/*.ppk $(regress openssh)
seed archive fixtures/archives/* fixtures/keys/*.pem $(regress archive)
seed layer "${tar_blobs[@]}" fixtures/archives/*.tar fixtures/archives/*.gz $(regress layer)
seed manifest "${json_blobs[@]}" "$oci/index.json" $(regress manifest)
seed webhook fixtures/webhooks/* $(regress webhook)

cd fuzz
summary=()
for t in "${targets[@]}"; do
  log="artifacts/$t.log"
  mkdir -p "artifacts/$t"
  echo "== $t: ${seconds}s" >&2
  status=ok
  # -timeout: one input taking over 10 s is a hang; -rss_limit_mb: over 2 GiB is a leak or bomb.
  if ! cargo fuzz run -a "$t" "corpus/$t" -- -max_total_time="$seconds" -timeout=10 \
      -rss_limit_mb=2048 -max_len=1048576 -print_final_stats=1 >"$log" 2>&1; then
    status=FAILED
  fi
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*' || echo '?')
  corpus=$(find "corpus/$t" -type f | wc -l)
  summary+=("$t: $status, ${runs} runs, cov ${cov}, corpus ${corpus}")
done
printf '%s\n' "${summary[@]}"
printf '%s\n' "${summary[@]}" | grep -q FAILED && exit 1
exit 0
