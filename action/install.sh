#!/usr/bin/env bash
# Step 1 of the Action: provides the ocicert binary and writes its path to the `path` output.
#
# Either the `ocicert-path` input names a binary the job built, or the release archive for
# `version` is downloaded and checked against the SHA-256 that checksums.txt, in this same Action
# commit, pins for it. A mismatch, or a version with no pinned checksum, stops the job before
# anything runs: a re-pointed tag or a swapped release asset cannot change what a SHA-pinned
# Action executes. OCICERT_RELEASE_BASE_URL replaces the GitHub releases URL (mirrors, tests);
# the checksum is checked all the same.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
fail() { echo "::error title=ocicert::$1"; exit 1; }
output() { echo "$1=$2" >> "${GITHUB_OUTPUT:?GITHUB_OUTPUT is not set (not running as an Action step?)}"; }

if [ -n "${INPUT_OCICERT_PATH:-}" ]; then
  [ -x "$INPUT_OCICERT_PATH" ] || fail "ocicert-path \`$INPUT_OCICERT_PATH\` is not an executable file"
  echo "using $("$INPUT_OCICERT_PATH" --version) at $INPUT_OCICERT_PATH"
  output path "$INPUT_OCICERT_PATH"
  exit 0
fi

version="${INPUT_VERSION:?the version input is empty}"
case "$version" in
  *[!0-9A-Za-z.+-]*) fail "version \`$version\` is not a release version" ;;
esac
case "$(uname -s)/$(uname -m)" in
  Linux/x86_64) arch=amd64 ;;
  Linux/aarch64 | Linux/arm64) arch=arm64 ;;
  *) fail "ocicert releases exist for Linux x86_64 and aarch64 runners only, not $(uname -s)/$(uname -m)" ;;
esac
name="ocicert-$version-linux-$arch"
expected=$(awk -v file="$name.tar.gz" '$2 == file { print $1 }' "$here/checksums.txt")
[ -n "$expected" ] || fail "this Action commit pins no checksum for $name.tar.gz (see action/checksums.txt); use a version it lists or the ocicert-path input"

base="${OCICERT_RELEASE_BASE_URL:-https://github.com/ocicert/ocicert/releases/download}"
dir="${RUNNER_TEMP:-${TMPDIR:-/tmp}}/ocicert-action-$version-$arch"
rm -rf "$dir"
mkdir -p "$dir"
archive="$dir/$name.tar.gz"
curl --fail --silent --show-error --location --retry 3 --proto-redir =https \
  --output "$archive" "$base/v$version/$name.tar.gz" \
  || fail "could not download $base/v$version/$name.tar.gz"
actual=$(sha256sum "$archive" | cut -d' ' -f1)
if [ "$actual" != "$expected" ]; then
  rm -rf "$dir"
  fail "checksum mismatch for $name.tar.gz: expected sha256:$expected, downloaded sha256:$actual (refusing to run it)"
fi
tar -xzf "$archive" -C "$dir"
bin="$dir/$name/ocicert"
[ -x "$bin" ] || fail "$name.tar.gz has no ocicert binary"
echo "verified $name.tar.gz (sha256:$actual): $("$bin" --version)"
output path "$bin"
