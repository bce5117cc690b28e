"""Settings shared by the examples here, from the environment:

- WARDEN_URL       the gateway (default http://127.0.0.1:8080)
- WARDEN_GRPC_URL  the gRPC listener (default http://127.0.0.1:50051)
- WARDEN_USERNAME  a user to log in as (default admin)
- WARDEN_PASSWORD  its password (default: the README quick start's)
- WARDEN_AUDIENCE  the JWT audience Warden is configured with (default warden)
"""

from __future__ import annotations

import os

import requests

URL = os.environ.get("WARDEN_URL", "http://127.0.0.1:8080").rstrip("/")
GRPC_TARGET = os.environ.get("WARDEN_GRPC_URL", "http://127.0.0.1:50051").removeprefix("http://")
USERNAME = os.environ.get("WARDEN_USERNAME", "admin")
PASSWORD = os.environ.get("WARDEN_PASSWORD", "change-me-now-please")
AUDIENCE = os.environ.get("WARDEN_AUDIENCE", "warden")
TIMEOUT = 10


def expect(response: requests.Response, status: int) -> requests.Response:
    """The response, if it has this status; otherwise fail with Warden's problem document."""
    if response.status_code != status:
        raise SystemExit(
            f"{response.request.method} {response.request.url}: expected {status}, "
            f"got {response.status_code}: {response.text[:500]}"
        )
    return response


def login(username: str = USERNAME, password: str = PASSWORD) -> dict:
    """POST /api/v1/auth/login: {access_token, refresh_token, token_type, expires_in, …}."""
    r = requests.post(f"{URL}/api/v1/auth/login", json={"username": username, "password": password}, timeout=TIMEOUT)
    return expect(r, 200).json()
