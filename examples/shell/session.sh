#!/usr/bin/env bash
# Log in, ask who I am, refresh (the refresh token rotates), log out; the ended session's
# access token stops working at once.
. "$(dirname "$0")/common.sh"

tokens=$(login)
access=$(jq -r .access_token <<<"$tokens")
refresh=$(jq -r .refresh_token <<<"$tokens")
echo "logged in: access token for $(jq -r .expires_in <<<"$tokens") s"

me=$(call 200 GET /api/v1/auth/me -H "authorization: Bearer $access")
echo "me: $(jq -c '{username, roles}' <<<"$me")"

tokens=$(call 200 POST /api/v1/auth/refresh -H 'content-type: application/json' \
  -d "$(json --arg t "$refresh" '{refresh_token: $t}')")
access=$(jq -r .access_token <<<"$tokens")
refresh=$(jq -r .refresh_token <<<"$tokens")
echo "refreshed: new access and refresh tokens"

call 204 POST /api/v1/auth/logout -H 'content-type: application/json' \
  -d "$(json --arg t "$refresh" '{refresh_token: $t}')"
echo "logged out"

problem=$(call 401 GET /api/v1/auth/me -H "authorization: Bearer $access")
echo "the old access token now answers 401 $(jq -r .code <<<"$problem")"
