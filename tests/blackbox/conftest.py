"""Black-box harness for Warden.

Warden is treated as an opaque program: this file starts the already-built binary
(`WARDEN_BIN`, default `target/debug/warden`) with `warden serve`, talks to it only over
REST (requests), JWKS/JWT (PyJWT) and gRPC (grpcio stubs generated here from `proto/`), and
kills it at the end. Nothing is built here.

Backends (every test that uses the `warden` fixture runs once per backend):
- `sqlite`:   embedded SQLite file in a temp dir, SQL store instead of Redis.
- `postgres`: a fresh database `warden_t_bb_<random>` created with `psql` on
              `WARDEN_TEST_DATABASE_URL`, plus Redis at `WARDEN_TEST_REDIS_URL`. Skipped when
              either is unset, unless `WARDEN_TEST_REQUIRE_SERVICES=1` (then it fails).
"""

from __future__ import annotations

import importlib
import importlib.resources
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
import requests

from helpers import REFRESH_REPLAY_WINDOW, Api, Warden, bearer

REPO = Path(__file__).resolve().parents[2]
PROTO_DIR = REPO / "proto"
READY_TIMEOUT = 30.0

# ---------------------------------------------------------------------------------------------
# gRPC stubs: generated once per run from proto/ into a temp dir put on sys.path, so the test
# modules can `import warden.auth.v1.auth_pb2` etc. at collection time.
# ---------------------------------------------------------------------------------------------

_STUB_DIR: str | None = None


def _generate_stubs() -> str:
    out = tempfile.mkdtemp(prefix="warden-bb-stubs-")
    protos = sorted(str(p.relative_to(PROTO_DIR)) for p in PROTO_DIR.rglob("*.proto"))
    if not protos:
        raise RuntimeError(f"no .proto files under {PROTO_DIR}")
    well_known = importlib.resources.files("grpc_tools") / "_proto"
    cmd = [
        sys.executable, "-m", "grpc_tools.protoc",
        f"-I{PROTO_DIR}", f"-I{well_known}",
        f"--python_out={out}", f"--grpc_python_out={out}",
        *protos,
    ]
    res = subprocess.run(cmd, cwd=PROTO_DIR, capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"protoc failed ({res.returncode}): {' '.join(cmd)}\n{res.stdout}{res.stderr}")
    return out


def pytest_configure(config):
    global _STUB_DIR
    if _STUB_DIR is None:
        _STUB_DIR = _generate_stubs()
        sys.path.insert(0, _STUB_DIR)
        importlib.invalidate_caches()


def pytest_unconfigure(config):
    global _STUB_DIR
    if _STUB_DIR is not None:
        shutil.rmtree(_STUB_DIR, ignore_errors=True)
        _STUB_DIR = None


# ---------------------------------------------------------------------------------------------
# The Warden process
# ---------------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _warden_bin() -> Path:
    raw = os.environ.get("WARDEN_BIN", "target/debug/warden")
    path = Path(raw)
    if not path.is_absolute():
        path = REPO / path
    return path


def _tail(path: Path, lines: int = 60) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as e:
        return f"<no log: {e}>"


def _psql(url: str, sql: str) -> None:
    res = subprocess.run(
        ["psql", url, "-v", "ON_ERROR_STOP=1", "-qAtc", sql],
        capture_output=True, text=True, timeout=60,
    )
    if res.returncode != 0:
        raise RuntimeError(f"psql {sql!r} failed: {res.stderr.strip()}")


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


def _start(backend: str, tmp: Path, extra_env: dict[str, str], admin_username: str) -> Warden:
    binary = _warden_bin()
    if not binary.is_file():
        pytest.fail(f"warden binary not found at {binary} (build it, or set WARDEN_BIN)", pytrace=False)
    http_port, grpc_port = _free_port(), _free_port()
    while grpc_port == http_port:
        grpc_port = _free_port()
    base = f"http://127.0.0.1:{http_port}"
    admin_password = "bb-admin-" + uuid.uuid4().hex[:16]
    env = {k: v for k, v in os.environ.items() if not k.startswith("WARDEN_")}
    env.update(
        WARDEN_HTTP_ADDR=f"127.0.0.1:{http_port}",
        WARDEN_GRPC_ADDR=f"127.0.0.1:{grpc_port}",
        WARDEN_DATABASE_URL=f"sqlite://{tmp}/w.db?mode=rwc",
        WARDEN_BOOTSTRAP_ADMIN_USERNAME=admin_username,
        WARDEN_BOOTSTRAP_ADMIN_PASSWORD=admin_password,
        WARDEN_ISSUER=base,
        # The suite logs in far more than 60 times a minute from one address; 0 turns the
        # per-client limit off (SPEC §2) so a throttle never masks what a test checks.
        WARDEN_CLIENT_RATE_LIMIT="0",
        # Reuse of a just-rotated refresh token inside this window is answered with the same
        # successor (lost answers); past it, it is reuse. The shortest window keeps the reuse
        # tests' waits short. (0 would not turn it off: with whole seconds and `<=`, a reuse
        # within the same second is still replayed.)
        WARDEN_REFRESH_REPLAY_WINDOW=str(REFRESH_REPLAY_WINDOW),
        RUST_LOG=os.environ.get("RUST_LOG", "info"),
        # One JSON record per line, so test_zz_logs.py can check every record.
        WARDEN_LOG_FORMAT="json",
        NO_COLOR="1",
    )
    env.update(extra_env)
    log_path = tmp / "warden.log"
    log = open(log_path, "wb")
    proc = subprocess.Popen(
        [str(binary), "serve"], cwd=tmp, env=env, stdout=log, stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    log.close()
    w = Warden(
        backend=backend, base=base, grpc_target=f"127.0.0.1:{grpc_port}", issuer=base,
        admin_username=admin_username, admin_password=admin_password, log_path=log_path, proc=proc,
    )
    deadline = time.monotonic() + READY_TIMEOUT
    last = "no answer"
    while True:
        if proc.poll() is not None:
            pytest.fail(
                f"warden ({backend}) exited with {proc.returncode} before ready\n{_tail(log_path)}",
                pytrace=False,
            )
        try:
            r = requests.get(base + "/readyz", timeout=2)
            if r.status_code == 200:
                break
            last = f"{r.status_code} {r.text[:200]}"
        except requests.RequestException as e:
            last = repr(e)
        if time.monotonic() > deadline:
            _stop(proc)
            pytest.fail(
                f"warden ({backend}) not ready within {READY_TIMEOUT:.0f}s (last /readyz: {last})\n"
                f"{_tail(log_path)}",
                pytrace=False,
            )
        time.sleep(0.1)
    return w


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


BACKENDS = ["sqlite", "postgres"]


@pytest.fixture(scope="session", params=BACKENDS)
def warden(request):
    """A running `warden serve` (all in one process) on one backend, for the whole session."""
    backend = request.param
    tmp = Path(tempfile.mkdtemp(prefix=f"warden-bb-{backend}-"))
    dbname = None
    db_url = os.environ.get("WARDEN_TEST_DATABASE_URL")
    try:
        if backend == "sqlite":
            w = _start(backend, tmp, {}, "admin")
        else:
            redis_url = os.environ.get("WARDEN_TEST_REDIS_URL")
            if not db_url or not redis_url:
                msg = "WARDEN_TEST_DATABASE_URL and WARDEN_TEST_REDIS_URL must be set for the postgres backend"
                if os.environ.get("WARDEN_TEST_REQUIRE_SERVICES") == "1":
                    pytest.fail(msg + " (WARDEN_TEST_REQUIRE_SERVICES=1)", pytrace=False)
                pytest.skip(msg)
            dbname = "warden_t_bb_" + uuid.uuid4().hex[:16]
            _psql(db_url, f"CREATE DATABASE {dbname}")
            # Redis is shared with other test runs, and lockout counters are keyed by username:
            # a unique admin name keeps anyone else's failed "admin" logins from locking ours.
            w = _start(
                backend, tmp,
                {"WARDEN_DATABASE_URL": _with_database(db_url, dbname), "WARDEN_REDIS_URL": redis_url},
                "admin_" + uuid.uuid4().hex[:10],
            )
        yield w
    finally:
        if "w" in locals():
            _stop(w.proc)
        if dbname and db_url:
            try:
                _psql(db_url, f"DROP DATABASE IF EXISTS {dbname} WITH (FORCE)")
            except Exception as e:  # noqa: BLE001 - cleanup only
                print(f"warning: could not drop {dbname}: {e}", file=sys.stderr)
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """On failure, attach the tail of the Warden log to the report."""
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        w = getattr(item, "funcargs", {}).get("warden")
        if isinstance(w, Warden):
            report.sections.append((f"warden log ({w.backend}, tail)", _tail(w.log_path, 40)))


# ---------------------------------------------------------------------------------------------
# Per-test fixtures
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def api(warden) -> Api:
    return Api(warden)


@pytest.fixture
def admin(api) -> dict:
    """Fresh admin tokens (a new session) for one test."""
    return api.admin_tokens()


@pytest.fixture
def admin_id(warden, api, admin) -> str:
    if warden.admin_id is None:
        r = api.get("/api/v1/auth/me", headers=bearer(admin["access_token"]))
        assert r.status_code == 200, r.text
        warden.admin_id = r.json()["id"]
    return warden.admin_id
