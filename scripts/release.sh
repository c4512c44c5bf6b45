#!/usr/bin/env bash
# Builds a release of ocicert for one Linux architecture: a static (musl) `ocicert` plus both
# enrollment stubs, laid out as the Docker image and the release archive use them:
#   OUT/usr/local/bin/ocicert
#   OUT/usr/local/lib/ocicert/stubs/{amd64,arm64}/ocicert-enroll
#   OUT/etc/ssl/certs/ca-certificates.crt      (Mozilla's current TLS roots: `ocicert roots`)
#   OUT/home/ocicert/                          (HOME of the image's non-root user)
#   OUT/tmp/                                   (mode 1777)
# and the release archive DIST/ocicert-VERSION-linux-ARCH.tar.gz (`ocicert` and `stubs/`),
# whose SHA-256 goes into DIST/SHA256SUMS. `--pin` also records it in action/checksums.txt,
# the file the GitHub Action verifies downloads against (commit it with the release tag).
#
#   scripts/release.sh [--arch amd64|arm64] [--out OUT] [--dist DIST] [--pin]
#
# Needs the rustup musl targets, musl-tools, and for arm64 gcc-aarch64-linux-gnu (scripts/test
# installs them). The Dockerfile's builder stage runs this same script.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
target_dir="${CARGO_TARGET_DIR:-$root/target}"
arch=amd64
out="$target_dir/dist/context/out"
dist="$target_dir/dist"
pin=false
while [ $# -gt 0 ]; do
  case "$1" in
    --arch) arch="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --dist) dist="$2"; shift 2 ;;
    --pin) pin=true; shift ;;
    *) echo "release.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
case "$arch" in
  amd64) triple=x86_64-unknown-linux-musl ;;
  arm64)
    triple=aarch64-unknown-linux-musl
    export CC_aarch64_unknown_linux_musl=aarch64-linux-gnu-gcc
    export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER=rust-lld
    ;;
  *) echo "release.sh: unknown arch $arch (amd64, arm64)" >&2; exit 2 ;;
esac
version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$root/Cargo.toml" | head -1)

# C code in aws-lc-sys, zstd-sys and the bundled SQLite is compiled by musl-gcc for x86_64.
export CC_x86_64_unknown_linux_musl="${CC_x86_64_unknown_linux_musl:-musl-gcc}"
(cd "$root" && cargo build --locked -p ocicert --bin ocicert --profile release-dist --target "$triple")
OCICERT_STUB_DIR="$out/usr/local/lib/ocicert/stubs" "$root/scripts/build-stubs.sh" >/dev/null

mkdir -p "$out/usr/local/bin" "$out/etc/ssl/certs" "$out/home/ocicert" "$out/tmp" "$dist"
install -m 0755 "$target_dir/$triple/release-dist/ocicert" "$out/usr/local/bin/ocicert"
# The image's CA bundle is exactly the root set ocicert judges against, never the build
# machine's bundle (which may hold local or proxy CAs).
run_built=("$out/usr/local/bin/ocicert")
if [ "$arch" = arm64 ] && [ "$(uname -m)" != aarch64 ]; then
  run_built=(qemu-aarch64-static "$out/usr/local/bin/ocicert")
fi
"${run_built[@]}" roots > "$out/etc/ssl/certs/ca-certificates.crt.tmp"
mv -f "$out/etc/ssl/certs/ca-certificates.crt.tmp" "$out/etc/ssl/certs/ca-certificates.crt"
chmod 0644 "$out/etc/ssl/certs/ca-certificates.crt"
chmod 1777 "$out/tmp"

name="ocicert-$version-linux-$arch"
archive="$dist/$name.tar.gz"
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/$name"
cp "$out/usr/local/bin/ocicert" "$stage/$name/ocicert"
cp -r "$out/usr/local/lib/ocicert/stubs" "$stage/$name/stubs"
# Reproducible archive: fixed order, owner and times.
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -C "$stage" -cf - "$name" \
  | gzip -n -9 > "$archive.tmp"
mv -f "$archive.tmp" "$archive"
sum=$(sha256sum "$archive" | cut -d' ' -f1)
touch "$dist/SHA256SUMS"
grep -v "  $name.tar.gz\$" "$dist/SHA256SUMS" > "$dist/SHA256SUMS.tmp" || true
echo "$sum  $name.tar.gz" >> "$dist/SHA256SUMS.tmp"
mv -f "$dist/SHA256SUMS.tmp" "$dist/SHA256SUMS"
if $pin; then
  sums="$root/action/checksums.txt"
  grep -v "  $name.tar.gz\$" "$sums" > "$sums.tmp" || true
  echo "$sum  $name.tar.gz" >> "$sums.tmp"
  mv -f "$sums.tmp" "$sums"
fi
printf '%s\t%s bytes\t%s\n' ocicert "$(stat -c %s "$out/usr/local/bin/ocicert")" "$archive"
