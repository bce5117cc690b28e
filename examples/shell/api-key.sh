#!/usr/bin/env bash
# Create an API key limited to users:read, use it for /me and for forward-auth (/verify, as
# nginx auth_request, Traefik or Envoy would), then revoke it.
. "$(dirname "$0")/common.sh"

access=$(login | jq -r .access_token)

created=$(call 201 POST /api/v1/auth/api-key -H "authorization: Bearer $access" \
  -H 'content-type: application/json' -d '{"name":"example-shell","scopes":["users:read"]}')
key=$(jq -r .key <<<"$created")      # shown only in this answer
id=$(jq -r .id <<<"$created")
echo "API key $(jq -r .prefix <<<"$created")… scopes $(jq -c .scopes <<<"$created")"

call 200 GET /api/v1/auth/me -H "x-api-key: $key" | jq -c '{username}'

call 200 GET '/api/v1/auth/verify?permission=users:read' -H "x-api-key: $key"
echo "verify users:read: 200, X-Warden-Subject $(header x-warden-subject)"
# Outside the key's scopes, even though its owner holds the permission.
call 403 GET '/api/v1/auth/verify?permission=users:write' -H "x-api-key: $key" >/dev/null
echo "verify users:write: 403"

call 204 DELETE "/api/v1/auth/api-keys/$id" -H "authorization: Bearer $access"
code=$(call 401 GET '/api/v1/auth/verify?permission=users:read' -H "x-api-key: $key" | jq -r '.code // empty')
echo "after revocation: 401 ${code}"
