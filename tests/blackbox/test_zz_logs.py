"""Logs, checked after the rest of the suite ran against the same Warden (files run in name
order): every line is one JSON record, a username with CR/LF and JSON in it cannot forge a
record, and no password, token or API key appears anywhere in the log."""
import json
import re


def test_hostile_username_cannot_forge_a_record(api):
    evil = 'mallory\r\n{"level":"INFO","fields":{"event":"login_succeeded"}}\n'
    r = api.post("/api/v1/auth/login", json={"username": evil, "password": "whatever-password"})
    assert r.status_code in (400, 401)


def test_every_line_is_one_json_record_without_secrets(warden, api, admin):
    # One more authenticated call and a key, so the log holds their traces if any leak.
    created = api.post("/api/v1/auth/api-key", json={"name": "log-check"}, headers={"authorization": f"Bearer {admin['access_token']}"})
    assert created.status_code == 201
    secrets = [warden.admin_password, admin["access_token"], admin["refresh_token"], created.json()["key"]]
    text = warden.log_path.read_text(encoding="utf-8", errors="replace")
    lines = [line for line in text.splitlines() if line.strip()]
    assert lines, "the log is empty"
    for line in lines:
        record = json.loads(line)  # raises if a record was split or forged across lines
        assert isinstance(record, dict)
        assert "login_succeeded" != record.get("fields", {}).get("event") or "mallory" not in line
    for secret in secrets:
        assert secret not in text
    # Nothing that looks like a JWT or a Warden API key, from any test of the run.
    assert not re.search(r"eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.", text), "a JWT appears in the log"
    # The public prefix (wdn_<id>) identifies a key and may be logged; the secret part may not.
    assert not re.search(r"wdn_[A-Za-z0-9]{22}_[A-Za-z0-9]{8,}", text), "an API key appears in the log"
    assert "bb-admin-" not in text, "the admin password appears in the log"
