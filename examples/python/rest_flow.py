"""The REST API with requests: log in, who am I, an API key and what it may do, refresh, log out."""

from __future__ import annotations

import requests

from warden_example import TIMEOUT, URL, expect, login


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def main() -> None:
    tokens = login()
    access = tokens["access_token"]
    print(f"logged in; the access token lasts {tokens['expires_in']} s")

    me = expect(requests.get(f"{URL}/api/v1/auth/me", headers=bearer(access), timeout=TIMEOUT), 200).json()
    print(f"me: {me['username']} roles={me['roles']}")

    # An API key limited to users:read. Its secret is in this answer only.
    key = expect(
        requests.post(
            f"{URL}/api/v1/auth/api-key", headers=bearer(access), timeout=TIMEOUT,
            json={"name": "example-python", "scopes": ["users:read"]},
        ),
        201,
    ).json()
    as_key = {"X-API-Key": key["key"]}
    for permission in ("users:read", "users:write"):
        answer = expect(
            requests.post(f"{URL}/api/v1/auth/authorize", headers=as_key, json={"permission": permission}, timeout=TIMEOUT),
            200,
        ).json()
        print(f"with the key, {permission}: allowed={answer['allowed']} {answer.get('code', '')}")
        assert answer["allowed"] == (permission == "users:read"), answer
    expect(requests.delete(f"{URL}/api/v1/auth/api-keys/{key['id']}", headers=bearer(access), timeout=TIMEOUT), 204)
    print("key revoked")

    # Refresh: the refresh token is rotated; keep the new one.
    tokens = expect(
        requests.post(f"{URL}/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}, timeout=TIMEOUT), 200
    ).json()
    print("refreshed")

    expect(
        requests.post(f"{URL}/api/v1/auth/logout", json={"refresh_token": tokens["refresh_token"]}, timeout=TIMEOUT), 204
    )
    problem = expect(requests.get(f"{URL}/api/v1/auth/me", headers=bearer(tokens["access_token"]), timeout=TIMEOUT), 401)
    print(f"logged out; the access token now answers 401 {problem.json()['code']}")


if __name__ == "__main__":
    main()
