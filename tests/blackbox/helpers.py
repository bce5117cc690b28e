"""Helpers shared by the black-box tests: a plain REST client, problem+json checks, JWT parts."""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass, field
from pathlib import Path
import subprocess

import requests

HTTP_TIMEOUT = 30.0
AUDIENCE = "warden"
# Seconds (WARDEN_REFRESH_REPLAY_WINDOW) during which a just-rotated refresh token still yields
# its successor. Tests that check reuse wait until it has passed.
REFRESH_REPLAY_WINDOW = 1


@dataclass
class Warden:
    backend: str
    base: str
    grpc_target: str
    issuer: str
    admin_username: str
    admin_password: str
    log_path: Path
    proc: subprocess.Popen = field(repr=False)
    admin_id: str | None = None


# ---------------------------------------------------------------------------------------------
# REST helpers
# ---------------------------------------------------------------------------------------------

PROBLEM_FIELDS = ("type", "title", "status", "detail", "code")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_problem(resp: requests.Response, status: int, code: str | tuple[str, ...] | None) -> dict:
    """An RFC 9457 problem with the stable Warden code, per SPEC §3 Errors.

    `code` is the one code SPEC requires, a tuple when SPEC allows several, or None when SPEC
    names none for the case (the body must still be a complete problem)."""
    ctx = f"{resp.request.method} {resp.request.url} -> {resp.status_code} {resp.headers.get('content-type')} {resp.text[:500]!r}"
    assert resp.status_code == status, ctx
    ctype = resp.headers.get("content-type", "")
    assert ctype.split(";")[0].strip().lower() == "application/problem+json", ctx
    body = resp.json()
    for f in PROBLEM_FIELDS:
        assert f in body, f"problem lacks {f!r}: {ctx}"
    assert body["status"] == status, ctx
    if isinstance(code, str):
        assert body["code"] == code, ctx
    elif code is not None:
        assert body["code"] in code, ctx
    assert isinstance(body["code"], str) and body["code"], ctx
    assert isinstance(body["title"], str) and body["title"], ctx
    assert isinstance(body["detail"], str), ctx
    return body


def assert_www_authenticate(resp: requests.Response, token_presented: bool) -> str:
    value = resp.headers.get("www-authenticate", "")
    assert value.lower().startswith("bearer"), f"WWW-Authenticate: {value!r}"
    assert 'realm="warden"' in value, f"WWW-Authenticate: {value!r}"
    if token_presented:
        assert 'error="invalid_token"' in value, f"WWW-Authenticate: {value!r}"
    return value


class Api:
    """A plain HTTP client against one Warden."""

    def __init__(self, w: Warden):
        self.w = w
        self.base = w.base

    def request(self, method: str, path: str, **kw) -> requests.Response:
        kw.setdefault("timeout", HTTP_TIMEOUT)
        kw.setdefault("allow_redirects", False)
        return requests.request(method, self.base + path, **kw)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, **kw):
        return self.request("POST", path, **kw)

    def put(self, path, **kw):
        return self.request("PUT", path, **kw)

    def patch(self, path, **kw):
        return self.request("PATCH", path, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)

    def login(self, username: str, password: str) -> requests.Response:
        return self.post("/api/v1/auth/login", json={"username": username, "password": password})

    def tokens(self, username: str, password: str) -> dict:
        r = self.login(username, password)
        assert r.status_code == 200, f"login {username}: {r.status_code} {r.text[:300]}"
        return r.json()

    def admin_tokens(self) -> dict:
        return self.tokens(self.w.admin_username, self.w.admin_password)

    def create_user(self, admin_access: str, roles: list[str] | None = None, prefix: str = "bb") -> "User":
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        password = "pw-" + uuid.uuid4().hex
        body = {"username": name, "password": password}
        if roles is not None:
            body["roles"] = roles
        r = self.post("/api/v1/admin/users", json=body, headers=bearer(admin_access))
        assert r.status_code == 201, f"create user: {r.status_code} {r.text[:300]}"
        return User(id=r.json()["id"], username=name, password=password)


@dataclass
class User:
    id: str
    username: str
    password: str


# ---------------------------------------------------------------------------------------------
# JWT helpers (no verification: just the parts)
# ---------------------------------------------------------------------------------------------


def b64url_decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def b64url_encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def jwt_parts(token: str) -> tuple[dict, dict, str]:
    h, p, s = token.split(".")
    return json.loads(b64url_decode(h)), json.loads(b64url_decode(p)), s
