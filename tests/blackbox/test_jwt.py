"""Access tokens as a third party sees them: PyJWT against the published JWKS (SPEC §3, §5)."""

from __future__ import annotations

import hashlib
import hmac
import http.server
import json
import threading
import uuid

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from helpers import AUDIENCE, assert_problem, assert_www_authenticate, b64url_decode, b64url_encode, bearer, jwt_parts


def jwks(api) -> dict:
    r = api.get("/.well-known/jwks.json")
    assert r.status_code == 200, r.text
    return r.json()


def decode(api, token: str) -> dict:
    client = jwt.PyJWKClient(api.base + "/.well-known/jwks.json", cache_jwk_set=False)
    key = client.get_signing_key_from_jwt(token)
    return jwt.decode(
        token,
        key.key,
        algorithms=["EdDSA"],
        audience=AUDIENCE,
        issuer=api.w.issuer,
        options={"require": ["exp", "iat", "iss", "aud", "sub"]},
    )


def assert_refused(api, token: str, what: str) -> None:
    r = api.get("/api/v1/auth/me", headers=bearer(token))
    assert r.status_code == 401, f"{what}: Warden accepted a forged token ({r.status_code} {r.text[:200]})"
    assert_problem(r, 401, "token_invalid")
    assert_www_authenticate(r, token_presented=True)


def sign_raw(header: dict, payload: dict, signer) -> str:
    h = b64url_encode(json.dumps(header, separators=(",", ":")).encode())
    p = b64url_encode(json.dumps(payload, separators=(",", ":")).encode())
    signing_input = f"{h}.{p}".encode()
    return f"{h}.{p}.{b64url_encode(signer(signing_input))}"


def test_jwks_publishes_ed25519_public_keys(api):
    keys = jwks(api)["keys"]
    assert keys, "empty JWKS"
    for k in keys:
        assert k["kty"] == "OKP" and k["crv"] == "Ed25519", k
        assert k.get("kid"), k
        assert k.get("alg", "EdDSA") == "EdDSA", k
        assert k.get("use", "sig") == "sig", k
        assert "d" not in k, "private key material in the JWKS"
        assert len(b64url_decode(k["x"])) == 32, k


def test_access_token_verifies_with_pyjwt(api, admin, admin_id):
    token = admin["access_token"]
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "EdDSA"
    assert header["typ"] == "at+jwt"
    assert header["kid"] in {k["kid"] for k in jwks(api)["keys"]}
    claims = decode(api, token)
    assert claims["iss"] == api.w.issuer
    aud = claims["aud"]
    assert aud == AUDIENCE or (isinstance(aud, list) and AUDIENCE in aud)
    assert claims["sub"] == admin_id
    assert claims["exp"] - claims["iat"] == 900


def test_pyjwt_rejects_wrong_audience_and_issuer(api, admin):
    # The claims really are checked by a standard client (guards the test above).
    client = jwt.PyJWKClient(api.base + "/.well-known/jwks.json")
    key = client.get_signing_key_from_jwt(admin["access_token"]).key
    with pytest.raises(jwt.InvalidAudienceError):
        jwt.decode(admin["access_token"], key, algorithms=["EdDSA"], audience="other", issuer=api.w.issuer)
    with pytest.raises(jwt.InvalidIssuerError):
        jwt.decode(admin["access_token"], key, algorithms=["EdDSA"], audience=AUDIENCE, issuer="http://evil")


def test_tampered_payload_is_rejected(api, admin):
    token = admin["access_token"]
    h, p, s = token.split(".")
    claims = json.loads(b64url_decode(p))
    claims["exp"] = claims["exp"] + 86400
    claims["sub"] = str(uuid.uuid4())
    tampered = ".".join([h, b64url_encode(json.dumps(claims, separators=(",", ":")).encode()), s])
    with pytest.raises(jwt.InvalidSignatureError):
        decode(api, tampered)
    assert_refused(api, tampered, "tampered payload")


def test_stripped_signature_is_rejected(api, admin):
    h, p, _ = admin["access_token"].split(".")
    assert_refused(api, f"{h}.{p}.", "empty signature")


def test_alg_none_is_rejected(api, admin):
    header, claims, _ = jwt_parts(admin["access_token"])
    for alg in ("none", "None", "NONE"):
        forged = sign_raw({**header, "alg": alg}, claims, lambda _: b"")
        assert_refused(api, forged, f"alg {alg}")
    # PyJWT's own unsigned token.
    forged = jwt.encode(claims, None, algorithm="none", headers={"typ": "at+jwt", "kid": header["kid"]})
    assert_refused(api, forged, "PyJWT alg none")


def test_algorithm_confusion_hs256_with_public_key_is_rejected(api, admin):
    header, claims, _ = jwt_parts(admin["access_token"])
    jwk = next(k for k in jwks(api)["keys"] if k["kid"] == header["kid"])
    raw = b64url_decode(jwk["x"])
    pem = Ed25519PublicKey.from_public_bytes(raw).public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    der = Ed25519PublicKey.from_public_bytes(raw).public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    hs_header = {"typ": "at+jwt", "kid": header["kid"]}
    # PyJWT signs HS256 with raw bytes; it refuses PEM/DER secrets, so those are hand-built.
    for name, secret in (("raw public key", raw), ("JWK x", jwk["x"].encode())):
        forged = jwt.encode(claims, secret, algorithm="HS256", headers=hs_header)
        assert_refused(api, forged, f"HS256 with {name}")
    for name, secret in (("PEM", pem), ("DER", der), ("JWK JSON", json.dumps(jwk).encode())):
        for alg, digest in (("HS256", hashlib.sha256), ("HS512", hashlib.sha512)):
            forged = sign_raw({"alg": alg, **hs_header}, claims, lambda m: hmac.new(secret, m, digest).digest())
            assert_refused(api, forged, f"{alg} with {name}")


def test_foreign_ed25519_keys_are_rejected(api, admin):
    header, claims, _ = jwt_parts(admin["access_token"])
    attacker = Ed25519PrivateKey.generate()
    attacker_jwk = json.loads(jwt.algorithms.OKPAlgorithm.to_jwk(attacker.public_key()))
    cases = {
        "real kid, foreign key": {"kid": header["kid"]},
        "embedded jwk": {"kid": "attacker", "jwk": attacker_jwk},
        "embedded jwk, real kid": {"kid": header["kid"], "jwk": attacker_jwk},
        "junk kid (path)": {"kid": "../../../../../../dev/null"},
        "junk kid (sql)": {"kid": "' OR '1'='1"},
        "no kid": {},
    }
    for name, extra in cases.items():
        forged = jwt.encode(claims, attacker, algorithm="EdDSA", headers={"typ": "at+jwt", **extra})
        if "kid" not in extra:
            h, p, s = forged.split(".")
            hd = json.loads(b64url_decode(h))
            hd.pop("kid", None)
            forged = sign_raw(hd, json.loads(b64url_decode(p)), attacker.sign)
        assert_refused(api, forged, name)


class _Recorder(http.server.BaseHTTPRequestHandler):
    hits: list[str] = []
    body = b"{}"

    def do_GET(self):  # noqa: N802
        type(self).hits.append(self.path)
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.end_headers()
        self.wfile.write(type(self).body)

    def log_message(self, *args):
        pass


def test_jku_and_x5u_are_never_fetched(api, admin):
    header, claims, _ = jwt_parts(admin["access_token"])
    attacker = Ed25519PrivateKey.generate()
    attacker_jwk = json.loads(jwt.algorithms.OKPAlgorithm.to_jwk(attacker.public_key()))
    attacker_jwk["kid"] = "attacker"

    handler = type("Recorder", (_Recorder,), {"hits": [], "body": json.dumps({"keys": [attacker_jwk]}).encode()})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        for name, extra in (
            ("jku", {"kid": "attacker", "jku": url + "/jwks.json"}),
            ("x5u", {"kid": "attacker", "x5u": url + "/cert.pem"}),
            ("jku, real kid", {"kid": header["kid"], "jku": url + "/jwks2.json"}),
        ):
            forged = jwt.encode(claims, attacker, algorithm="EdDSA", headers={"typ": "at+jwt", **extra})
            assert_refused(api, forged, name)
        assert handler.hits == [], f"Warden fetched {handler.hits}"
    finally:
        server.shutdown()
        server.server_close()


def test_refresh_token_is_not_an_access_token(api, admin):
    r = api.get("/api/v1/auth/me", headers=bearer(admin["refresh_token"]))
    assert_problem(r, 401, "token_invalid")
    assert_www_authenticate(r, token_presented=True)


def test_access_token_is_not_a_refresh_token(api, admin):
    r = api.post("/api/v1/auth/refresh", json={"refresh_token": admin["access_token"]})
    assert_problem(r, 401, ("token_invalid", "refresh_failed"))
    # And the session is still usable afterwards with the real refresh token.
    r = api.post("/api/v1/auth/refresh", json={"refresh_token": admin["refresh_token"]})
    assert r.status_code == 200, r.text


def test_discovery_configures_a_standard_validator(warden, api, admin):
    """OIDC discovery: a standard client starts from the issuer URL alone, follows jwks_uri
    from the document, and verifies a Warden token with the advertised algorithm."""
    config = api.get("/.well-known/openid-configuration").json()
    assert config["issuer"] == warden.base
    assert config["jwks_uri"].startswith(warden.base)
    assert "EdDSA" in config["id_token_signing_alg_values_supported"]
    assert config["token_endpoint"].startswith(warden.base)
    client = jwt.PyJWKClient(config["jwks_uri"])
    key = client.get_signing_key_from_jwt(admin["access_token"])
    claims = jwt.decode(
        admin["access_token"],
        key.key,
        algorithms=config["id_token_signing_alg_values_supported"],
        audience="warden",
        issuer=config["issuer"],
    )
    assert claims["sub"]
