#!/usr/bin/env bash
# Regenerates src/known-public-keys.txt: the fingerprints (SHA-256 of the public key) of private
# keys that public packages publish, each with the package, version and path it came from.
# `known-public-key` flags a copy of one of them outside its package even when the package is
# not in the image. Fingerprints only: no key material is written.
#
#   scripts/gen-known-keys.sh
#
# Needs Debian 12 apt sources (apt-get download), pip and network access; builds ocicert and
# lets it find the keys (`scan dir:` of each unpacked package).
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages with keys a server loads by default, or test keys that get copied.
DEBIAN=(jetty9 node-rai libgnutls30 python3-twisted python3-tornado)
# The most-installed PyPI packages that ship test keys.
PYPI=(tornado==6.4.2 twisted==24.11.0)

cargo build --quiet --locked
bin=$PWD/target/debug/ocicert
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# fingerprints ECOSYSTEM NAME VERSION DIR: one line per key found in DIR.
fingerprints() {
  "$bin" scan "dir:$4" --format json --fail-on never --no-cache 2>/dev/null | python3 -c '
import json, sys
ecosystem, name, version = sys.argv[1:4]
report = json.load(sys.stdin)
for image in report["images"]:
    for key in image["inventory"]["keys"]:
        if not key.get("spki_sha256"):
            continue
        location = sorted(key["locations"], key=lambda l: (l.get("path", ""), l.get("archive_path", "")))[0]
        path = location.get("path", "")
        if location.get("archive_path"):
            path += "!/" + location["archive_path"]
        print(key["fingerprint"], ecosystem, name, version, path)
' "$1" "$2" "$3"
}

{
  for package in "${DEBIAN[@]}"; do
    (cd "$work" && apt-get download "$package" >/dev/null 2>&1)
    deb=$(ls "$work/${package}"_*.deb)
    version=$(dpkg-deb -f "$deb" Version)
    dpkg-deb -x "$deb" "$work/deb-$package"
    fingerprints dpkg "$package" "$version" "$work/deb-$package"
  done
  for spec in "${PYPI[@]}"; do
    name=${spec%%==*}
    version=${spec##*==}
    pip download --quiet --no-deps --disable-pip-version-check -d "$work/pypi-$name" "$spec"
    mkdir -p "$work/wheel-$name"
    python3 -m zipfile -e "$work/pypi-$name"/*.whl "$work/wheel-$name"
    fingerprints pypi "$name" "$version" "$work/wheel-$name"
  done
} | sort -u -k1,1 > "$work/list"

{
  echo "# Private keys that public packages publish: fingerprint (SHA-256 of the public key),"
  echo "# ecosystem, package, version, and the path of its first copy in the package."
  echo "# Written by scripts/gen-known-keys.sh; do not edit by hand."
  cat "$work/list"
} > src/known-public-keys.txt
echo "src/known-public-keys.txt: $(wc -l < "$work/list") keys" >&2
