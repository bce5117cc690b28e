"""Forward-auth through a real nginx: `auth_request` against `GET /api/v1/auth/verify` (SPEC §3).

Per backend, this starts a tiny upstream (threaded http.server that answers 200 with a JSON
echo of the request headers it received, and records every request) and an nginx (from PATH,
/usr/sbin/nginx or NGINX_BIN; `.ci/blackbox` installs Debian's package) with a generated config
in a temp dir:

    location /protected/      -> auth_request /_warden_verify; the subject (and username) Warden
                                 answers with is passed upstream as X-Warden-Subject
                                 (X-Warden-Username); a client-sent one never is
    location = /_warden_verify -> internal; Warden's /api/v1/auth/verify?permission=users:read

Every protected request goes to its own path (/protected/<uuid>), so "the upstream never saw
it" is checked against the upstream's own record. Without nginx (or without its
ngx_http_auth_request_module) the tests skip, or fail when WARDEN_TEST_REQUIRE_SERVICES=1.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from helpers import HTTP_TIMEOUT, bearer

PERMISSION = "users:read"
NGINX_READY_TIMEOUT = 15.0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as e:
        return f"<no log: {e}>"


def _unavailable(msg: str):
    if os.environ.get("WARDEN_TEST_REQUIRE_SERVICES") == "1":
        pytest.fail(msg + " (WARDEN_TEST_REQUIRE_SERVICES=1)", pytrace=False)
    pytest.skip(msg)


# ---------------------------------------------------------------------------------------------
# nginx binary
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def nginx_bin() -> str:
    """Path of an nginx built with ngx_http_auth_request_module."""
    candidate = os.environ.get("NGINX_BIN")
    if candidate:
        if not os.access(candidate, os.X_OK):
            _unavailable(f"NGINX_BIN={candidate} is not an executable")
    else:
        candidate = shutil.which("nginx")
        if not candidate and os.access("/usr/sbin/nginx", os.X_OK):
            candidate = "/usr/sbin/nginx"
        if not candidate:
            _unavailable("nginx not found (NGINX_BIN, PATH, /usr/sbin/nginx); .ci/blackbox installs it as root with apt")
    res = subprocess.run([candidate, "-V"], capture_output=True, text=True, timeout=30)
    build = res.stdout + res.stderr
    if res.returncode != 0:
        _unavailable(f"{candidate} -V failed ({res.returncode}): {build.strip()}")
    if "--with-http_auth_request_module" not in build:
        _unavailable(f"{candidate} lacks ngx_http_auth_request_module:\n{build.strip()}")
    return candidate


# ---------------------------------------------------------------------------------------------
# The upstream: echoes the headers it received, and records every request
# ---------------------------------------------------------------------------------------------


@dataclass
class Upstream:
    port: int
    server: ThreadingHTTPServer = field(repr=False)
    _seen: list[dict] = field(default_factory=list, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(self, entry: dict) -> None:
        with self._lock:
            self._seen.append(entry)

    def requests_for(self, path: str) -> list[dict]:
        with self._lock:
            return [e for e in self._seen if e["path"] == path]


def _make_handler(upstream_ref: list[Upstream]):
    class Echo(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _answer(self):
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            entry = {
                "method": self.command,
                "path": self.path,
                # Every header line as received, duplicates kept.
                "headers": [[k, v] for k, v in self.headers.items()],
            }
            upstream_ref[0].record(entry)
            body = json.dumps(entry).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _answer  # noqa: N815

        def log_message(self, fmt, *args):  # keep pytest output clean
            pass

    return Echo


@pytest.fixture(scope="session")
def upstream():
    ref: list[Upstream] = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(ref))
    server.daemon_threads = True
    up = Upstream(port=server.server_address[1], server=server)
    ref.append(up)
    thread = threading.Thread(target=server.serve_forever, name="bb-upstream", daemon=True)
    thread.start()
    try:
        yield up
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


# ---------------------------------------------------------------------------------------------
# nginx in front of one Warden
# ---------------------------------------------------------------------------------------------

NGINX_CONF = """\
# Generated by tests/blackbox/test_forward_auth.py
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log info;

events {{
    worker_connections 64;
}}

http {{
    access_log {tmp}/access.log;
    client_body_temp_path {tmp}/client_body_temp;
    proxy_temp_path {tmp}/proxy_temp;
    fastcgi_temp_path {tmp}/fastcgi_temp;
    uwsgi_temp_path {tmp}/uwsgi_temp;
    scgi_temp_path {tmp}/scgi_temp;

    server {{
        listen 127.0.0.1:{port};
        server_name localhost;

        location = /_nginx_ready {{
            return 204;
        }}

        location /protected/ {{
            auth_request /_warden_verify;
            auth_request_set $warden_subject $upstream_http_x_warden_subject;
            auth_request_set $warden_username $upstream_http_x_warden_username;
            # Replaces any client-sent header of the same name (an empty value drops it), so a
            # client cannot forge the identity the upstream trusts.
            proxy_set_header X-Warden-Subject $warden_subject;
            proxy_set_header X-Warden-Username $warden_username;
            proxy_pass http://127.0.0.1:{upstream_port};
        }}

        location = /_warden_verify {{
            internal;
            proxy_pass http://127.0.0.1:{warden_port}/api/v1/auth/verify?permission={permission};
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header Authorization $http_authorization;
            proxy_set_header X-API-Key $http_x_api_key;
            proxy_set_header X-Warden-Subject "";
            proxy_set_header X-Warden-Username "";
        }}
    }}
}}
"""


@dataclass
class Nginx:
    base: str
    tmp: Path
    proc: subprocess.Popen = field(repr=False)
    session: requests.Session = field(repr=False)

    def get(self, path: str, headers: dict[str, str] | None = None) -> requests.Response:
        return self.session.get(self.base + path, headers=headers or {}, timeout=HTTP_TIMEOUT, allow_redirects=False)

    def logs(self) -> str:
        return f"--- nginx error.log ---\n{_tail(self.tmp / 'error.log')}\n--- nginx access.log ---\n{_tail(self.tmp / 'access.log')}"


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()  # SIGTERM: fast shutdown of master and workers
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@pytest.fixture(scope="session")
def nginx(nginx_bin, upstream, warden):
    """nginx with auth_request against this backend's Warden, for the whole session."""
    tmp = Path(tempfile.mkdtemp(prefix=f"warden-bb-nginx-{warden.backend}-"))
    # Run as root, nginx's workers drop to its default unprivileged user: let them reach the
    # temp paths below (nginx creates and chowns those itself).
    tmp.chmod(0o755)
    warden_port = urlsplit(warden.base).port
    port = _free_port()
    conf = tmp / "nginx.conf"
    conf.write_text(
        NGINX_CONF.format(
            tmp=tmp, port=port, upstream_port=upstream.port, warden_port=warden_port, permission=PERMISSION
        )
    )
    session = requests.Session()
    session.trust_env = False  # never through an HTTP(S)_PROXY from the environment
    out_path = tmp / "nginx.out"
    cmd = [nginx_bin, "-p", f"{tmp}/", "-e", str(tmp / "error.log"), "-c", str(conf), "-g", "daemon off;"]
    with open(out_path, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=tmp, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    n = Nginx(base=f"http://127.0.0.1:{port}", tmp=tmp, proc=proc, session=session)
    try:
        deadline = time.monotonic() + NGINX_READY_TIMEOUT
        last = "no answer"
        while True:
            if proc.poll() is not None:
                pytest.fail(
                    f"nginx exited with {proc.returncode} before ready: {' '.join(cmd)}\n"
                    f"{_tail(out_path)}\n{n.logs()}\n--- nginx.conf ---\n{conf.read_text()}",
                    pytrace=False,
                )
            try:
                r = n.get("/_nginx_ready")
                if r.status_code == 204:
                    break
                last = f"{r.status_code} {r.text[:200]}"
            except requests.RequestException as e:
                last = repr(e)
            if time.monotonic() > deadline:
                pytest.fail(f"nginx not ready within {NGINX_READY_TIMEOUT:.0f}s (last: {last})\n{n.logs()}", pytrace=False)
            time.sleep(0.1)
        yield n
    finally:
        _stop(proc)
        session.close()
        shutil.rmtree(tmp, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------


def _header_values(entry: dict, name: str) -> list[str]:
    return [v for k, v in entry["headers"] if k.lower() == name.lower()]


def _protected_path() -> str:
    return f"/protected/{uuid.uuid4().hex}"


def _ctx(r: requests.Response, nginx: Nginx) -> str:
    return f"GET {r.request.url} -> {r.status_code} {dict(r.headers)} {r.text[:300]!r}\n{nginx.logs()}"


def assert_blocked(nginx: Nginx, upstream: Upstream, status: int, headers: dict[str, str] | None = None) -> requests.Response:
    """nginx answers `status` itself and the upstream never sees the request."""
    path = _protected_path()
    r = nginx.get(path, headers)
    assert r.status_code == status, _ctx(r, nginx)
    assert upstream.requests_for(path) == [], f"upstream saw {path} although nginx answered {r.status_code}"
    assert "x-warden-subject" not in r.headers, _ctx(r, nginx)
    return r


def assert_passed(nginx: Nginx, upstream: Upstream, headers: dict[str, str]) -> dict:
    """nginx lets the request through: the upstream saw it exactly once; returns what it saw."""
    path = _protected_path()
    r = nginx.get(path, headers)
    assert r.status_code == 200, _ctx(r, nginx)
    echoed = r.json()
    assert echoed["path"] == path, echoed
    seen = upstream.requests_for(path)
    assert len(seen) == 1, f"upstream saw {path} {len(seen)} times"
    assert seen[0] == echoed
    return seen[0]


def assert_identity(entry: dict, subject: str, username: str) -> None:
    subjects = _header_values(entry, "X-Warden-Subject")
    assert subjects == [subject], f"upstream got X-Warden-Subject {subjects!r}, want [{subject!r}]: {entry}"
    usernames = _header_values(entry, "X-Warden-Username")
    assert usernames == [username], f"upstream got X-Warden-Username {usernames!r}, want [{username!r}]: {entry}"


def _low_privilege_token(api, admin) -> str:
    """A fresh user with no roles (so without users:read), logged in."""
    user = api.create_user(admin["access_token"], prefix="bb_fa")
    return api.tokens(user.username, user.password)["access_token"]


def _api_key(api, admin, scopes: list[str]) -> str:
    r = api.post(
        "/api/v1/auth/api-key", json={"name": "bb-forward-auth", "scopes": scopes}, headers=bearer(admin["access_token"])
    )
    assert r.status_code == 201, r.text
    return r.json()["key"]


# ---------------------------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------------------------


def test_no_credential_is_401_and_never_reaches_upstream(nginx, upstream):
    r = assert_blocked(nginx, upstream, 401)
    # nginx hands Warden's challenge (SPEC §3 Errors) on to the client.
    www = r.headers.get("www-authenticate", "")
    assert www.lower().startswith("bearer") and 'realm="warden"' in www, _ctx(r, nginx)

    # Invalid credentials of either kind are 401 too.
    assert_blocked(nginx, upstream, 401, bearer("x.y.z"))
    assert_blocked(nginx, upstream, 401, {"X-API-Key": "wdn_notarealkey_" + uuid.uuid4().hex})


def test_user_without_permission_is_403(nginx, upstream, api, admin):
    token = _low_privilege_token(api, admin)
    assert_blocked(nginx, upstream, 403, bearer(token))


def test_admin_passes_with_real_subject(nginx, upstream, warden, admin, admin_id):
    seen = assert_passed(nginx, upstream, bearer(admin["access_token"]))
    assert_identity(seen, admin_id, warden.admin_username)


def test_api_key_scoped_to_permission_passes(nginx, upstream, warden, api, admin, admin_id):
    key = _api_key(api, admin, [PERMISSION])
    for headers in ({"X-API-Key": key}, {"Authorization": f"ApiKey {key}"}):
        seen = assert_passed(nginx, upstream, headers)
        assert_identity(seen, admin_id, warden.admin_username)

    # A key of the same admin scoped to something else does not carry users:read.
    other = _api_key(api, admin, ["roles:read"])
    assert_blocked(nginx, upstream, 403, {"X-API-Key": other})


def test_forged_subject_without_credential_is_401(nginx, upstream, admin_id):
    for name in ("X-Warden-Subject", "x-warden-subject"):
        assert_blocked(nginx, upstream, 401, {name: admin_id, "X-Warden-Username": "admin"})


def test_forged_subject_with_low_privilege_token_is_403(nginx, upstream, api, admin, admin_id):
    token = _low_privilege_token(api, admin)
    assert_blocked(nginx, upstream, 403, {**bearer(token), "X-Warden-Subject": admin_id, "X-Warden-Username": "admin"})


def test_forged_subject_with_admin_token_is_replaced_by_real_one(nginx, upstream, warden, admin, admin_id):
    forged = str(uuid.uuid4())
    for name in ("X-Warden-Subject", "x-wArDeN-sUbJeCt"):
        seen = assert_passed(
            nginx, upstream, {**bearer(admin["access_token"]), name: forged, "X-Warden-Username": "mallory"}
        )
        assert_identity(seen, admin_id, warden.admin_username)
        assert forged not in json.dumps(seen), seen
