#!/usr/bin/env bash
# Measures the enrollment stub against its budget (issue 6): stripped size of both static
# binaries (<= 4 MB), peak RSS of an enrollment (<= 20 MiB) and the stub's own start-up time
# (<= 50 ms: the time to exec the program when a valid certificate is reused, no network).
# Needs the stubs (scripts/build-stubs.sh), /usr/bin/time, openssl, /usr/bin/python3 with
# python3-cryptography (the EST test server) and, if installed, hyperfine.
# Usage: scripts/bench-stub.sh
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
stubs="${OCICERT_STUB_DIR:-$root/target/stubs}"
[ -x "$stubs/amd64/ocicert-enroll" ] && [ -x "$stubs/arm64/ocicert-enroll" ] || "$root/scripts/build-stubs.sh" >/dev/null
stub="$stubs/amd64/ocicert-enroll"
T="$(mktemp -d)"
trap 'kill "${mock_pid:-}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$T"' EXIT

echo "== size (stripped, static)"
for arch in amd64 arm64; do
  printf '%s\t%s bytes\t%s\n' "$arch" "$(stat -c %s "$stubs/$arch/ocicert-enroll")" "$(file -b "$stubs/$arch/ocicert-enroll" | cut -d, -f1-2,6-)"
done

# A test CA and the EST test server on a free port.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$T/ca.key" -out "$T/ca.pem" \
  -days 1 -subj /CN=bench-ca -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$T/tls.key" -out "$T/tls.csr" -subj /CN=localhost 2>/dev/null
openssl x509 -req -in "$T/tls.csr" -CA "$T/ca.pem" -CAkey "$T/ca.key" -CAcreateserial -out "$T/tls.pem" -days 1 \
  -extfile <(printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n') 2>/dev/null
port="$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
cat > "$T/mock.json" <<JSON
{"mode":"est","port":$port,"tls_cert":"$T/tls.pem","tls_key":"$T/tls.key","ca_cert":"$T/ca.pem","ca_key":"$T/ca.key",
 "log":"$T/requests.jsonl","users":["bench:bench"]}
JSON
/usr/bin/python3 "$root/enroll/tests/support/pkimock.py" "$T/mock.json" > "$T/mock.log" 2>&1 &
mock_pid=$!
for _ in $(seq 100); do curl -s --cacert "$T/ca.pem" -o /dev/null "https://127.0.0.1:$port/.well-known/est/cacerts" && break; sleep 0.1; done
cat > "$T/enroll.json" <<JSON
{"version":1,"ca":{"protocol":"est","url":"https://127.0.0.1:$port"},"tls_ca_file":"$T/ca.pem",
 "sans":["bench.example.test"],"output_dir":"$T/out"}
JSON
export OCICERT_EST_USERNAME=bench OCICERT_EST_PASSWORD=bench

echo "== peak RSS of one enrollment (EST, ECDSA P-256, then exec /bin/true)"
/usr/bin/time -v "$stub" --config "$T/enroll.json" -- /bin/true 2> "$T/time.txt" || { cat "$T/time.txt"; exit 1; }
grep -E 'Maximum resident set size|Elapsed \(wall|User time|System time' "$T/time.txt"
echo "== peak RSS of one enrollment with RSA 3072 key generation"
sed 's/"sans"/"key_type":"rsa-3072","sans"/; s#"output_dir":"[^"]*"#"output_dir":"'"$T"'/out-rsa"#' "$T/enroll.json" > "$T/enroll-rsa.json"
/usr/bin/time -v "$stub" --config "$T/enroll-rsa.json" -- /bin/true 2> "$T/time-rsa.txt" || { cat "$T/time-rsa.txt"; exit 1; }
grep -E 'Maximum resident set size|Elapsed \(wall|User time|System time' "$T/time-rsa.txt"

echo "== start-up: reuse of a valid certificate, then exec /bin/true (no network)"
kill "$mock_pid"; wait "$mock_pid" 2>/dev/null || true; mock_pid=
/usr/bin/time -v "$stub" --config "$T/enroll.json" -- /bin/true 2> "$T/time-reuse.txt"
grep -E 'Maximum resident set size' "$T/time-reuse.txt"
if command -v hyperfine >/dev/null 2>&1; then
  hyperfine -N --warmup 20 --runs 300 --export-json "$T/startup.json" \
    "/bin/true" \
    "$stub --config $T/enroll.json -- /bin/true" 2>&1 | grep -vE '^\s*$'
  startup_ms=$(python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))["results"]; print("%.2f" % ((r[1]["mean"] - r[0]["mean"]) * 1000))' "$T/startup.json")
else
  n=200
  start=$(date +%s%N); for _ in $(seq $n); do /bin/true; done; base=$(( $(date +%s%N) - start ))
  start=$(date +%s%N); for _ in $(seq $n); do "$stub" --config "$T/enroll.json" -- /bin/true 2>/dev/null; done
  total=$(( $(date +%s%N) - start ))
  startup_ms=$(awk -v t="$total" -v b="$base" -v n="$n" 'BEGIN { printf "%.2f", (t - b) / n / 1e6 }')
  echo "mean per start: ${startup_ms} ms over /bin/true alone (loop of $n)"
fi
rss() { awk -F: '/Maximum resident set size/ { gsub(/ /, "", $2); print $2 }' "$1"; }
# The figures as one JSON line, last on stdout (scripts/bench.sh collects it).
printf '{"amd64_bytes":%s,"arm64_bytes":%s,"enroll_rss_kib":%s,"enroll_rsa_rss_kib":%s,"reuse_rss_kib":%s,"startup_ms":%s}\n' \
  "$(stat -c %s "$stubs/amd64/ocicert-enroll")" "$(stat -c %s "$stubs/arm64/ocicert-enroll")" \
  "$(rss "$T/time.txt")" "$(rss "$T/time-rsa.txt")" "$(rss "$T/time-reuse.txt")" "$startup_ms"
