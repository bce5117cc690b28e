"""Validate Warden's access tokens yourself with PyJWT: keys from the JWKS named by OIDC discovery.

Checks the EdDSA signature, `exp`/`nbf`/`iat` (with Warden's 10 s leeway), `iss` and `aud`. This
does not see logouts: a token of an ended session stays valid here until it expires. Ask Warden
(GET /api/v1/auth/me, gRPC GetVerifiedUser) where that matters.
"""

from __future__ import annotations

import jwt
import requests

from warden_example import AUDIENCE, TIMEOUT, URL, expect, login


def main() -> None:
    discovery = expect(requests.get(f"{URL}/.well-known/openid-configuration", timeout=TIMEOUT), 200).json()
    jwks = jwt.PyJWKClient(discovery["jwks_uri"], cache_keys=True)

    token = login()["access_token"]
    key = jwks.get_signing_key_from_jwt(token)  # by the token's `kid`
    claims = jwt.decode(
        token,
        key.key,
        algorithms=discovery["id_token_signing_alg_values_supported"],
        audience=AUDIENCE,
        issuer=discovery["issuer"],
        leeway=10,
        options={"require": ["exp", "iat", "iss", "aud", "sub"]},
    )
    print(f"valid token: sub={claims['sub']} kid={key.key_id} expires at {claims['exp']}")

    # A token whose payload was changed no longer matches its signature.
    header, payload, signature = token.split(".")
    forged = ".".join([header, payload[:-4] + ("AAAA" if payload[-4:] != "AAAA" else "BBBB"), signature])
    error = None
    try:
        jwt.decode(forged, key.key, algorithms=["EdDSA"], audience=AUDIENCE, issuer=discovery["issuer"])
    except jwt.InvalidTokenError as e:
        error = e
    if error is None:
        raise SystemExit("a forged token was accepted")
    print(f"forged token rejected: {type(error).__name__}")


if __name__ == "__main__":
    main()
