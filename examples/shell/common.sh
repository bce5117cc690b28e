# Sourced by the other scripts here: where Warden is, who logs in, and small helpers.
# Needs curl and jq.
#   WARDEN_URL       the gateway (default http://127.0.0.1:8080)
#   WARDEN_USERNAME  a user to log in as (default admin; admin.sh needs roles:write, users:write)
#   WARDEN_PASSWORD  its password (default: the README quick start's)
set -euo pipefail
WARDEN_URL=${WARDEN_URL:-http://127.0.0.1:8080}
WARDEN_USERNAME=${WARDEN_USERNAME:-admin}
WARDEN_PASSWORD=${WARDEN_PASSWORD:-change-me-now-please}

# call STATUS METHOD PATH [curl options…]: the response body on stdout; fails (with the body
# on stderr) when the status is not STATUS. Response headers go to $HEADERS.
HEADERS=$(mktemp)
trap 'rm -f "$HEADERS"' EXIT
call() {
  local want=$1 method=$2 path=$3 body status
  shift 3
  body=$(mktemp)
  status=$(curl -sS -o "$body" -D "$HEADERS" -w '%{http_code}' -X "$method" "$WARDEN_URL$path" "$@")
  if [ "$status" != "$want" ]; then
    echo "$method $path: expected $want, got $status: $(cat "$body")" >&2
    rm -f "$body"
    return 1
  fi
  cat "$body"
  rm -f "$body"
}

fail() { echo "$*" >&2; exit 1; }

# JSON bodies: `json` passes its arguments to `jq -n`, e.g. json --arg u bob '{username:$u}'.
json() { jq -cn "$@"; }
# header NAME: a header of the last response.
header() { tr -d '\r' < "$HEADERS" | awk -v h="$(echo "$1" | tr 'A-Z' 'a-z')" -F': ' 'tolower($1) == h { print $2 }'; }

# login [USERNAME PASSWORD]: the token pair as JSON.
login() {
  call 200 POST /api/v1/auth/login -H 'content-type: application/json' \
    -d "$(json --arg u "${1:-$WARDEN_USERNAME}" --arg p "${2:-$WARDEN_PASSWORD}" '{username: $u, password: $p}')"
}
