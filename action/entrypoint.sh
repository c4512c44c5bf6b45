#!/usr/bin/env bash
# Step 2 of the Action: turns the INPUT_* variables (set by action.yml, one per input, `-` → `_`)
# into ocicert flags, runs `ocicert scan` or `ocicert inject` (then scans what inject pushed), and
# reports back to the runner: outputs in $GITHUB_OUTPUT, the Markdown summary in
# $GITHUB_STEP_SUMMARY, ::error/::warning annotations for the top findings. Secrets are masked
# before anything else is printed. The exit status is ocicert's: 0 clean, 1 findings at or above
# fail-on, 2 the scan could not run. Needs bash and jq (both on GitHub-hosted runners).
set -euo pipefail

bin="${OCICERT_BIN:-ocicert}"
fail() { echo "::error title=ocicert::$1"; exit 2; }
output() { echo "$1=$2" >> "${GITHUB_OUTPUT:?GITHUB_OUTPUT is not set (not running as an Action step?)}"; }
truthy() { case "${1,,}" in true | yes | 1 | on) return 0 ;; *) return 1 ;; esac; }
mask() { # mask VALUE: every line of it, so multi-line secrets are hidden too
  local line
  while IFS= read -r line; do
    if [ -n "$line" ]; then echo "::add-mask::$line"; fi
  done <<< "$1"
}
command -v jq >/dev/null || fail "jq is required (it is preinstalled on GitHub-hosted runners)"

mask "${INPUT_REGISTRY_PASSWORD:-}"
mask "${INPUT_SIGN_KEY_PASSWORD:-}"
case "${INPUT_SIGN_KEY:-}" in *"-----BEGIN"*) mask "$INPUT_SIGN_KEY" ;; esac

work=$(mktemp -d "${RUNNER_TEMP:-${TMPDIR:-/tmp}}/ocicert.XXXXXX")
trap 'rm -rf "$work"' EXIT
chmod 700 "$work"

# file_arg VALUE NAME: a path is passed through; PEM text (from a secret) goes to a private file.
file_arg() {
  case "$1" in
    *"-----BEGIN"*)
      (umask 077 && printf '%s\n' "$1" > "$work/$2")
      echo "$work/$2"
      ;;
    *) echo "$1" ;;
  esac
}
# files VALUE NAME: one path per line. PEM text (one or more blocks) becomes one private file;
# anything else is a list of paths, one per line.
files() {
  case "$1" in
    *"-----BEGIN"*) file_arg "$1" "$2" ;;
    *) printf '%s\n' "$1" | sed 's/^[[:space:]]*//; s/[[:space:]]*$//' | grep -v '^$' || true ;;
  esac
}
# each_line VALUE: the non-empty lines of a multi-line input, trimmed.
each_line() {
  printf '%s\n' "$1" | sed 's/^[[:space:]]*//; s/[[:space:]]*$//' | grep -v '^$' || true
}

command="${INPUT_COMMAND:-scan}"
image="${INPUT_IMAGE:-}"
[ -n "$image" ] || fail "the image input is required"
sarif="${INPUT_SARIF_FILE:-}"

if [ -n "${INPUT_REGISTRY_USERNAME:-}" ] || [ -n "${INPUT_REGISTRY_PASSWORD:-}" ]; then
  [ -n "${INPUT_REGISTRY_USERNAME:-}" ] && [ -n "${INPUT_REGISTRY_PASSWORD:-}" ] \
    || fail "registry-username and registry-password go together"
  # ocicert reads these before auth.json and ~/.docker/config.json (the job's docker login).
  export OCICERT_USERNAME="$INPUT_REGISTRY_USERNAME" OCICERT_PASSWORD="$INPUT_REGISTRY_PASSWORD"
fi
if [ -n "${INPUT_SIGN_KEY_PASSWORD:-}" ]; then
  export COSIGN_PASSWORD="$INPUT_SIGN_KEY_PASSWORD"
fi

common=()
truthy "${INPUT_INSECURE:-false}" && common+=(--insecure)
[ -n "${INPUT_PLATFORM:-}" ] && common+=(--platform "$INPUT_PLATFORM")
# The signature check applies to the image the user named, not to what inject pushes.
verify=()
while IFS= read -r key; do
  verify+=(--verify-key "$key")
done < <(files "${INPUT_VERIFY_KEY:-}" verify.pub)

report_flags=(--output "json=$work/report.json" --output "markdown=$work/summary.md")
[ -n "$sarif" ] && report_flags+=(--output "sarif=$sarif")
[ -n "${INPUT_FAIL_ON:-}" ] && report_flags+=(--fail-on "$INPUT_FAIL_ON")
[ -n "${INPUT_POLICY:-}" ] && report_flags+=(--policy "$INPUT_POLICY")

run() { # run ARGS...: ocicert, keeping its exit status and the last line of its stderr
  local status=0
  "$bin" "$@" 2> >(tee "$work/stderr" >&2) || status=$?
  wait
  return "$status"
}

digest=""
case "$command" in
  scan)
    scan_target="$image"
    truthy "${INPUT_ALL_PLATFORMS:-false}" && common+=(--all-platforms)
    common+=("${verify[@]}")
    ;;
  inject)
    [ -n "${INPUT_TO:-}" ] || fail "inject needs the to input (where to push the result)"
    [ -n "${INPUT_CA:-}" ] || fail "inject needs the ca input (the CA certificates to add)"
    inject=(inject "$image" --to "$INPUT_TO" --digest-file "$work/digest")
    while IFS= read -r ca; do
      inject+=(--ca "$ca")
    done < <(files "$INPUT_CA" ca.pem)
    [ -n "${INPUT_ENROLL:-}" ] && inject+=(--enroll "$INPUT_ENROLL")
    [ -n "${INPUT_ENROLL_URL:-}" ] && inject+=(--enroll-url "$INPUT_ENROLL_URL")
    while IFS= read -r san; do inject+=(--enroll-san "$san"); done < <(each_line "${INPUT_ENROLL_SAN:-}")
    [ -n "${INPUT_ENROLL_KEY_TYPE:-}" ] && inject+=(--enroll-key-type "$INPUT_ENROLL_KEY_TYPE")
    [ -n "${INPUT_ENROLL_TLS_CA:-}" ] && inject+=(--enroll-tls-ca "$INPUT_ENROLL_TLS_CA")
    [ -n "${INPUT_ENROLL_VAULT_ROLE:-}" ] && inject+=(--enroll-vault-role "$INPUT_ENROLL_VAULT_ROLE")
    [ -n "${INPUT_ENROLL_VAULT_MOUNT:-}" ] && inject+=(--enroll-vault-mount "$INPUT_ENROLL_VAULT_MOUNT")
    [ -n "${INPUT_ENROLL_CONFIG:-}" ] && inject+=(--enroll-config "$INPUT_ENROLL_CONFIG")
    truthy "${INPUT_ENROLL_OPTIONAL:-false}" && inject+=(--enroll-optional)
    truthy "${INPUT_ENROLL_RENEW:-false}" && inject+=(--enroll-renew)
    [ -n "${INPUT_SIGN_KEY:-}" ] && inject+=(--sign-key "$(file_arg "$INPUT_SIGN_KEY" cosign.key)")
    truthy "${INPUT_ATTEST:-false}" && inject+=(--attest)
    status=0
    run "${inject[@]}" "${common[@]}" "${verify[@]}" || status=$?
    if [ "$status" -ne 0 ]; then
      echo "::error title=ocicert inject failed::$(tail -n 1 "$work/stderr" | sed 's/%/%25/g')"
      exit "$status"
    fi
    digest=$(tr -d '[:space:]' < "$work/digest")
    output digest "$digest"
    # Scan what was pushed, by digest when the destination is a registry reference.
    case "$INPUT_TO" in
      oci:* | oci-archive:* | docker-archive:*) scan_target="$INPUT_TO" ;;
      *@*) scan_target="${INPUT_TO%@*}@$digest" ;;
      *)
        last="${INPUT_TO##*/}"
        case "$last" in
          *:*) scan_target="${INPUT_TO%:*}@$digest" ;;
          *) scan_target="$INPUT_TO@$digest" ;;
        esac
        ;;
    esac
    ;;
  *) fail "command must be scan or inject, not \`$command\`" ;;
esac

status=0
run scan "$scan_target" --format "${INPUT_FORMAT:-table}" "${report_flags[@]}" "${common[@]}" || status=$?
if [ ! -s "$work/report.json" ]; then
  echo "::error title=ocicert scan failed::$(tail -n 1 "$work/stderr" | sed 's/%/%25/g')"
  exit "$status"
fi

report="$work/report.json"
# The digest the reference resolved to (a multi-platform image's index); a docker-archive has
# none, so its manifest's.
[ -n "$digest" ] || digest=$(jq -r '.digest // .images[0].manifest_digest // ""' "$report")
[ "$command" = scan ] && output digest "$digest"
output findings-count "$(jq '[.summary.findings[]] | add // 0' "$report")"
output highest-severity "$(jq -r '.summary.highest_severity // "none"' "$report")"
output sarif-file "$sarif"

if [ -n "${GITHUB_STEP_SUMMARY:-}" ]; then
  cat "$work/summary.md" >> "$GITHUB_STEP_SUMMARY"
fi

# Annotations: the top findings by severity, each once even when several platforms share it.
limit="${INPUT_ANNOTATIONS:-10}"
case "$limit" in '' | *[!0-9]*) limit=10 ;; esac
jq -r --argjson limit "$limit" '
  def rank: {"critical": 0, "high": 1, "medium": 2, "low": 3, "info": 4}[.] // 5;
  def data: gsub("%"; "%25") | gsub("\r"; "%0D") | gsub("\n"; "%0A");
  def prop: data | gsub(":"; "%3A") | gsub(","; "%2C");
  [.images[] | .findings[]]
  | unique_by([.rule, .fingerprint, .location.path // "", .location.config_field // ""])
  | map(select(.severity != "info"))
  | sort_by([(.severity | rank), .rule, (.location.path // "")])
  | .[:$limit][]
  | (if (.severity | rank) <= 1 then "error" elif .severity == "medium" then "warning" else "notice" end) as $level
  | ((.location.path // (.location.config_field // ""))
     + (if .location.archive_path then "!/" + .location.archive_path else "" end)) as $where
  | "::\($level) title=\("ocicert " + .rule + " (" + .severity + ")" | prop)::\((.message + (if $where != "" then " at " + $where else "" end)) | data)"
' "$report"

exit "$status"
