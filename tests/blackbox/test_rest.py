"""REST API of the gateway, checked with a plain HTTP client against SPEC §3."""

from __future__ import annotations

import time
import uuid

from helpers import REFRESH_REPLAY_WINDOW, assert_problem, assert_www_authenticate, bearer

LOGIN_FIELDS = ("access_token", "refresh_token", "token_type", "expires_in", "refresh_expires_in")
KEY_FIELDS = ("id", "name", "key", "prefix", "scopes", "expires_at", "rate_limit_per_minute", "created_at")


def assert_no_store(resp):
    cc = resp.headers.get("cache-control", "")
    assert "no-store" in [d.strip().lower() for d in cc.split(",")], f"Cache-Control: {cc!r} on {resp.request.url}"


def assert_token_pair(resp):
    assert resp.status_code == 200, resp.text
    assert resp.headers.get("content-type", "").startswith("application/json"), resp.headers.get("content-type")
    body = resp.json()
    for f in LOGIN_FIELDS:
        assert f in body, f"missing {f!r} in {sorted(body)}"
    assert body["token_type"] == "Bearer"
    assert isinstance(body["access_token"], str) and body["access_token"].count(".") == 2
    assert isinstance(body["refresh_token"], str) and body["refresh_token"]
    assert body["access_token"] != body["refresh_token"]
    assert isinstance(body["expires_in"], int) and 0 < body["expires_in"] <= 900
    assert isinstance(body["refresh_expires_in"], int) and body["refresh_expires_in"] > body["expires_in"]
    assert_no_store(resp)
    return body


# --- login, me ---------------------------------------------------------------------------------


def test_login_returns_token_pair(api):
    r = api.login(api.w.admin_username, api.w.admin_password)
    body = assert_token_pair(r)
    assert body["expires_in"] == 900  # WARDEN_ACCESS_TOKEN_TTL default
    assert body["refresh_expires_in"] == 1209600  # WARDEN_REFRESH_TOKEN_TTL default


def test_me_with_bearer(api, admin):
    r = api.get("/api/v1/auth/me", headers=bearer(admin["access_token"]))
    assert r.status_code == 200, r.text
    me = r.json()
    assert set(me) >= {"id", "username", "roles", "permissions"}
    assert me["username"] == api.w.admin_username
    assert isinstance(me["id"], str) and me["id"]
    assert "admin" in me["roles"]
    assert "*" in me["permissions"]  # the built-in role admin holds `*`


def test_bearer_scheme_is_case_insensitive(api, admin):
    r = api.get("/api/v1/auth/me", headers={"Authorization": "bearer " + admin["access_token"]})
    assert r.status_code == 200, r.text


def test_me_without_credentials_is_401_problem(api):
    r = api.get("/api/v1/auth/me")
    assert_problem(r, 401, None)
    assert_www_authenticate(r, token_presented=False)


def test_me_with_garbage_token(api):
    r = api.get("/api/v1/auth/me", headers=bearer("not.a.jwt"))
    assert_problem(r, 401, "token_invalid")
    assert_www_authenticate(r, token_presented=True)


def test_credentials_in_query_string_are_ignored(api, admin):
    token = admin["access_token"]
    for q in (f"access_token={token}", f"token={token}"):
        r = api.get("/api/v1/auth/me?" + q)
        assert r.status_code == 401, f"GET /me?{q[:20]}… -> {r.status_code} {r.text[:200]}"


# --- wrong credentials, lockout ----------------------------------------------------------------


def test_unknown_user_and_wrong_password_answer_identically(api, admin):
    user = api.create_user(admin["access_token"])
    wrong = api.login(user.username, "wrong-password-123")
    unknown = api.login("nobody_" + uuid.uuid4().hex[:12], "wrong-password-123")
    for r in (wrong, unknown):
        assert_problem(r, 401, "invalid_credentials")
        assert_www_authenticate(r, token_presented=False)
    assert wrong.content == unknown.content, f"bodies differ:\n{wrong.content!r}\n{unknown.content!r}"
    assert wrong.headers.get("content-type") == unknown.headers.get("content-type")
    assert wrong.headers.get("www-authenticate") == unknown.headers.get("www-authenticate")


def _lock(api, username: str) -> None:
    """Five consecutive failures (WARDEN_LOCKOUT_THRESHOLD default)."""
    for i in range(5):
        r = api.login(username, f"wrong-password-{i:03d}")
        if i < 4:
            assert_problem(r, 401, "invalid_credentials")
        else:  # the threshold-reaching attempt may already answer 423
            assert r.status_code in (401, 423), r.text


def _assert_locked(r) -> None:
    assert_problem(r, 423, "account_locked")
    retry = r.headers.get("retry-after")
    assert retry is not None and retry.isdigit(), f"Retry-After: {retry!r}"
    assert 0 < int(retry) <= 60, f"Retry-After: {retry!r} (first lock is WARDEN_LOCKOUT_SECONDS=60)"


def test_lockout_after_repeated_failures(api, admin):
    user = api.create_user(admin["access_token"])
    _lock(api, user.username)
    # Even the right password is refused while locked.
    _assert_locked(api.login(user.username, user.password))


def test_unknown_usernames_lock_the_same_way(api):
    name = "ghost_" + uuid.uuid4().hex[:12]
    _lock(api, name)
    _assert_locked(api.login(name, "wrong-password-xyz"))


# --- logout, refresh ---------------------------------------------------------------------------


def test_logout_ends_session(api):
    t = api.admin_tokens()
    assert api.get("/api/v1/auth/me", headers=bearer(t["access_token"])).status_code == 200
    r = api.post("/api/v1/auth/logout", json={"refresh_token": t["refresh_token"]})
    assert r.status_code == 204, r.text
    r = api.get("/api/v1/auth/me", headers=bearer(t["access_token"]))
    assert_problem(r, 401, "token_revoked")
    assert_www_authenticate(r, token_presented=True)
    r = api.post("/api/v1/auth/refresh", json={"refresh_token": t["refresh_token"]})
    assert_problem(r, 401, ("token_revoked", "refresh_failed"))


def test_logout_all_ends_every_session(api, admin):
    user = api.create_user(admin["access_token"])
    a = api.tokens(user.username, user.password)
    b = api.tokens(user.username, user.password)
    r = api.post("/api/v1/auth/logout", json={"all": True}, headers=bearer(a["access_token"]))
    assert r.status_code == 204, r.text
    for t in (a, b):
        assert_problem(api.get("/api/v1/auth/me", headers=bearer(t["access_token"])), 401, "token_revoked")


def _past_replay_window() -> None:
    # Warden counts in whole seconds and replays while `now - rotated_at <= window`.
    time.sleep(REFRESH_REPLAY_WINDOW + 1.1)


def test_refresh_rotates(api):
    t = api.admin_tokens()
    r = api.post("/api/v1/auth/refresh", json={"refresh_token": t["refresh_token"]})
    n = assert_token_pair(r)
    assert n["refresh_token"] != t["refresh_token"]
    assert api.get("/api/v1/auth/me", headers=bearer(n["access_token"])).status_code == 200
    # The rotated-out token no longer works (once the replay window for lost answers is over).
    _past_replay_window()
    r = api.post("/api/v1/auth/refresh", json={"refresh_token": t["refresh_token"]})
    assert_problem(r, 401, "token_revoked")
    assert_www_authenticate(r, token_presented=False)


def test_refresh_reuse_revokes_the_family(api):
    t = api.admin_tokens()
    n = assert_token_pair(api.post("/api/v1/auth/refresh", json={"refresh_token": t["refresh_token"]}))
    _past_replay_window()
    # Reuse of the rotated token ...
    assert api.post("/api/v1/auth/refresh", json={"refresh_token": t["refresh_token"]}).status_code == 401
    # ... revokes the whole family: the newer refresh token and its session's access tokens die too.
    r = api.post("/api/v1/auth/refresh", json={"refresh_token": n["refresh_token"]})
    assert_problem(r, 401, "token_revoked")
    assert_problem(api.get("/api/v1/auth/me", headers=bearer(n["access_token"])), 401, "token_revoked")


def test_refresh_with_garbage_token(api):
    r = api.post("/api/v1/auth/refresh", json={"refresh_token": "garbage"})
    assert_problem(r, 401, ("refresh_failed", "token_invalid"))


# --- API keys ----------------------------------------------------------------------------------


def test_api_key_lifecycle(api, admin, admin_id):
    access = admin["access_token"]
    r = api.post(
        "/api/v1/auth/api-key", json={"name": "bb-ci", "scopes": ["users:read"]}, headers=bearer(access)
    )
    assert r.status_code == 201, r.text
    assert_no_store(r)
    created = r.json()
    for f in KEY_FIELDS:
        assert f in created, f"missing {f!r} in {sorted(created)}"
    key = created["key"]
    assert isinstance(key, str) and len(key) >= 22  # ≥128 bits of randomness, some encoding
    assert created["name"] == "bb-ci"
    assert created["scopes"] == ["users:read"]
    assert created["expires_at"] is None
    assert key.startswith(created["prefix"]) and created["prefix"] != key

    # Listed without the secret.
    r = api.get("/api/v1/auth/api-keys", headers=bearer(access))
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    mine = [i for i in items if i["id"] == created["id"]]
    assert len(mine) == 1, items
    assert "key" not in mine[0]
    assert key not in r.text

    # Usable through both headers.
    for headers in ({"X-API-Key": key}, {"Authorization": f"ApiKey {key}"}):
        r = api.get("/api/v1/auth/me", headers=headers)
        assert r.status_code == 200, f"{list(headers)}: {r.status_code} {r.text[:300]}"
        assert r.json()["id"] == admin_id

    # Scopes narrow the owner's permissions.
    r = api.post("/api/v1/auth/authorize", json={"permission": "users:read"}, headers={"X-API-Key": key})
    assert r.status_code == 200 and r.json()["allowed"] is True, r.text
    r = api.post("/api/v1/auth/authorize", json={"permission": "users:write"}, headers={"X-API-Key": key})
    assert r.status_code == 200 and r.json()["allowed"] is False, r.text

    # Never honoured from the query string.
    assert api.get(f"/api/v1/auth/me?api_key={key}").status_code == 401

    # Revocation is effective at once.
    r = api.delete(f"/api/v1/auth/api-keys/{created['id']}", headers=bearer(access))
    assert r.status_code == 204, r.text
    for headers in ({"X-API-Key": key}, {"Authorization": f"ApiKey {key}"}):
        r = api.get("/api/v1/auth/me", headers=headers)
        assert_problem(r, 401, "key_revoked")
        assert_www_authenticate(r, token_presented=False)


def test_unknown_api_key_is_key_invalid(api):
    r = api.get("/api/v1/auth/me", headers={"X-API-Key": "wdn_notarealkey_" + uuid.uuid4().hex})
    assert_problem(r, 401, "key_invalid")


# --- authorize, verify -------------------------------------------------------------------------


def test_authorize(api, admin, admin_id):
    r = api.post("/api/v1/auth/authorize", json={"permission": "users:write"}, headers=bearer(admin["access_token"]))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["allowed"] is True
    assert body["subject"] == admin_id
    assert isinstance(body["reason"], str)

    user = api.create_user(admin["access_token"])
    t = api.tokens(user.username, user.password)
    r = api.post("/api/v1/auth/authorize", json={"permission": "users:write"}, headers=bearer(t["access_token"]))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["allowed"] is False
    assert body["subject"] == user.id

    r = api.post("/api/v1/auth/authorize", json={"permission": "users:write"})
    assert_problem(r, 401, None)
    assert_www_authenticate(r, token_presented=False)


def test_verify_forward_auth(api, admin, admin_id):
    r = api.get("/api/v1/auth/verify", params={"permission": "users:read"}, headers=bearer(admin["access_token"]))
    assert r.status_code == 200, r.text
    assert r.headers.get("x-warden-subject") == admin_id

    # No credentials: 401.
    r = api.get("/api/v1/auth/verify", params={"permission": "users:read"})
    assert_problem(r, 401, None)
    assert_www_authenticate(r, token_presented=False)

    # Bad token: 401.
    r = api.get("/api/v1/auth/verify", params={"permission": "users:read"}, headers=bearer("x.y.z"))
    assert_problem(r, 401, "token_invalid")
    assert_www_authenticate(r, token_presented=True)

    # Authenticated but without the permission: 403 insufficient_scope.
    user = api.create_user(admin["access_token"])
    t = api.tokens(user.username, user.password)
    r = api.get("/api/v1/auth/verify", params={"permission": "users:read"}, headers=bearer(t["access_token"]))
    assert_problem(r, 403, "insufficient_permissions")
    assert "x-warden-subject" not in r.headers
    www = r.headers.get("www-authenticate", "")
    assert 'error="insufficient_scope"' in www, f"WWW-Authenticate: {www!r}"


# --- admin API ---------------------------------------------------------------------------------


def test_admin_create_user_and_conflict(api, admin):
    name = "bb_" + uuid.uuid4().hex[:12]
    body = {"username": name, "password": "pw-" + uuid.uuid4().hex}
    r = api.post("/api/v1/admin/users", json=body, headers=bearer(admin["access_token"]))
    assert r.status_code == 201, r.text
    u = r.json()
    assert set(u) >= {"id", "username", "roles"}
    assert u["username"] == name and u["roles"] == []
    # The new user can log in.
    assert_token_pair(api.login(name, body["password"]))

    r = api.post("/api/v1/admin/users", json=body, headers=bearer(admin["access_token"]))
    assert_problem(r, 409, "conflict")


def test_admin_api_needs_permission(api, admin):
    user = api.create_user(admin["access_token"])
    t = api.tokens(user.username, user.password)
    r = api.post(
        "/api/v1/admin/users",
        json={"username": "bb_" + uuid.uuid4().hex[:12], "password": "pw-" + uuid.uuid4().hex},
        headers=bearer(t["access_token"]),
    )
    assert_problem(r, 403, "insufficient_permissions")


def test_role_assignment(api, admin):
    access = admin["access_token"]
    user = api.create_user(access)

    r = api.put(f"/api/v1/admin/users/{user.id}/roles/no_such_role_{uuid.uuid4().hex[:8]}", headers=bearer(access))
    assert_problem(r, 404, "role_not_found")

    role = "bb_reader_" + uuid.uuid4().hex[:8]
    r = api.post("/api/v1/admin/roles", json={"name": role, "permissions": ["users:read"]}, headers=bearer(access))
    assert r.status_code == 201, r.text

    t = api.tokens(user.username, user.password)
    check = lambda: api.get(  # noqa: E731
        "/api/v1/auth/verify", params={"permission": "users:read"}, headers=bearer(t["access_token"])
    )
    assert check().status_code == 403
    r = api.put(f"/api/v1/admin/users/{user.id}/roles/{role}", headers=bearer(access))
    assert r.status_code == 204, r.text
    r = check()
    assert r.status_code == 200, r.text
    assert r.headers.get("x-warden-subject") == user.id
    r = api.delete(f"/api/v1/admin/users/{user.id}/roles/{role}", headers=bearer(access))
    assert r.status_code == 204, r.text
    assert check().status_code == 403
