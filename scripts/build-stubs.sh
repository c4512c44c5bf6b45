#!/usr/bin/env bash
# Builds the enrollment stub (enroll/, binary `ocicert-enroll`) as static musl binaries for the
# two platforms `ocicert inject --enroll` supports, in the size-optimised `release-stub` profile:
#   ${OCICERT_STUB_DIR:-target/stubs}/amd64/ocicert-enroll   (x86_64-unknown-linux-musl)
#   ${OCICERT_STUB_DIR:-target/stubs}/arm64/ocicert-enroll   (aarch64-unknown-linux-musl)
# and prints their sizes. Needs `musl-tools` (ring's C code for x86_64-musl), `gcc-aarch64-linux-gnu`
# (ring's C code for aarch64) and both rustup targets; scripts/test installs them.
# Usage: scripts/build-stubs.sh [amd64] [arm64]     (default: both)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="${OCICERT_STUB_DIR:-$root/target/stubs}"
target_dir="${CARGO_TARGET_DIR:-$root/target}"
arches=("$@")
[ ${#arches[@]} -gt 0 ] || arches=(amd64 arm64)

for arch in "${arches[@]}"; do
  case "$arch" in
    amd64)
      triple=x86_64-unknown-linux-musl
      (cd "$root" && cargo build --locked -p ocicert-enroll --profile release-stub --target "$triple")
      ;;
    arm64)
      triple=aarch64-unknown-linux-musl
      # The default linker (cc) cannot link aarch64; rust-lld ships with rustc. ring's C files are
      # compiled by Debian's cross gcc.
      (cd "$root" && CC_aarch64_unknown_linux_musl=aarch64-linux-gnu-gcc \
        CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER=rust-lld \
        cargo build --locked -p ocicert-enroll --profile release-stub --target "$triple")
      ;;
    *) echo "build-stubs.sh: unknown arch $arch (amd64, arm64)" >&2; exit 2 ;;
  esac
  mkdir -p "$out/$arch"
  install -m 0755 "$target_dir/$triple/release-stub/ocicert-enroll" "$out/$arch/ocicert-enroll.tmp"
  mv -f "$out/$arch/ocicert-enroll.tmp" "$out/$arch/ocicert-enroll"
  printf '%s\t%s bytes\t%s\n' "$arch" "$(stat -c %s "$out/$arch/ocicert-enroll")" "$out/$arch/ocicert-enroll"
done
