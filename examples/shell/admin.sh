#!/usr/bin/env bash
# Administration: create a role and a user, assign the role, and ask whether the user may do
# something (authorize); then take the role away again and clean up.
. "$(dirname "$0")/common.sh"

admin=$(login | jq -r .access_token)
auth=(-H "authorization: Bearer $admin")
suffix=$(date +%s%N | sha256sum | cut -c1-10)
role="reports-reader-$suffix"
username="example-$suffix"
password="pw-$(date +%s%N | sha256sum | cut -c1-24)"

call 201 POST /api/v1/admin/roles "${auth[@]}" -H 'content-type: application/json' \
  -d "$(json --arg r "$role" '{name: $r, permissions: ["reports:read", "!reports:delete"]}')" | jq -c .
user=$(call 201 POST /api/v1/admin/users "${auth[@]}" -H 'content-type: application/json' \
  -d "$(json --arg u "$username" --arg p "$password" '{username: $u, password: $p}')")
user_id=$(jq -r .id <<<"$user")
echo "user $username ($user_id)"

call 204 PUT "/api/v1/admin/users/$user_id/roles/$role" "${auth[@]}"
echo "assigned $role"

# The user asks for themselves.
user_access=$(login "$username" "$password" | jq -r .access_token)
authorize() {
  call 200 POST /api/v1/auth/authorize -H "authorization: Bearer $user_access" \
    -H 'content-type: application/json' -d "$(json --arg p "$1" '{permission: $p}')"
}
[ "$(authorize reports:read | jq .allowed)" = true ] || fail "reports:read should be allowed"
echo "reports:read allowed"
answer=$(authorize reports:delete)
[ "$(jq .allowed <<<"$answer")" = false ] || fail "reports:delete should be refused: $answer"
echo "reports:delete refused: $(jq -r .code <<<"$answer")"

call 204 DELETE "/api/v1/admin/users/$user_id/roles/$role" "${auth[@]}"
[ "$(authorize reports:read | jq .allowed)" = false ] || fail "reports:read should be refused now"
echo "after unassigning: reports:read refused"

call 204 DELETE "/api/v1/admin/roles/$role" "${auth[@]}"
call 200 PATCH "/api/v1/admin/users/$user_id" "${auth[@]}" -H 'content-type: application/json' \
  -d '{"disabled":true}' | jq -c '{username, disabled}'
