"""Schemathesis hooks for Warden (loaded by .ci/schemathesis through SCHEMATHESIS_HOOKS).

Authentication: every request carries `Authorization: Bearer <access token>` from a real login,
so protected operations are exercised past the 401. The run must never end, lock, disable,
demote or re-password the admin it is authenticated as, or the rest of it would test only 401s.
So there are three users, all made by .ci/schemathesis:

- the bootstrap admin (WARDEN_ST_ADMIN*), the caller of everything else;
- a plain "target" user (WARDEN_ST_TARGET*), the caller of the operations on one's own account
  that would end or lock the caller's access: `changePassword` (a wrong current password counts
  toward the lockout), `logout` (`{"all": true}` ends every session) and `deleteSession`;
- a plain "subject" user (WARDEN_ST_SUBJECT*): Schemathesis reuses values from earlier answers
  (the admin's id from /me, its username), so wherever a request names the admin (a path `id`, a
  `username` in a body) it is pointed at the subject instead. Admin operations on users then
  disable, unlock, re-password or re-role the subject, never the caller.

Tokens are cached for a few seconds only, so a session the target ends costs at most a few
seconds of 401s (which the contract documents) rather than the rest of the run.
"""

import os

import requests
import schemathesis

BASE_URL = os.environ["WARDEN_ST_URL"]
ADMIN = (os.environ["WARDEN_ST_ADMIN"], os.environ["WARDEN_ST_ADMIN_PASSWORD"])
ADMIN_ID = os.environ["WARDEN_ST_ADMIN_ID"]
TARGET = (os.environ["WARDEN_ST_TARGET"], os.environ["WARDEN_ST_TARGET_PASSWORD"])
SUBJECT = os.environ["WARDEN_ST_SUBJECT"]
SUBJECT_ID = os.environ["WARDEN_ST_SUBJECT_ID"]
# Operations run as the target user, never as the admin.
AS_TARGET = {"changePassword", "logout", "deleteSession"}


def _identity(case, _ctx):
    return "target" if case.operation.definition.raw.get("operationId") in AS_TARGET else "admin"


@schemathesis.auth(refresh_interval=5, cache_by_key=_identity, retry_on=[])
class WardenLogin:
    def get(self, case, ctx):
        username, password = TARGET if _identity(case, ctx) == "target" else ADMIN
        answer = requests.post(
            f"{BASE_URL}/api/v1/auth/login",
            json={"username": username, "password": password},
            timeout=30,
        )
        if answer.status_code != 200:
            # The target user may be locked by changePassword's wrong passwords: its operations
            # then run unauthenticated (401, documented) until the lock ends.
            return None
        return answer.json()["access_token"]

    def set(self, case, data, ctx):
        headers = case.headers if case.headers is not None else {}
        if data is not None:
            headers["Authorization"] = f"Bearer {data}"
        case.headers = headers


@schemathesis.hook
def before_call(ctx, case, kwargs):
    """Point requests that name the admin at the subject user instead."""
    if case.path_parameters and case.path_parameters.get("id") == ADMIN_ID:
        case.path_parameters["id"] = SUBJECT_ID
    if isinstance(case.body, dict) and case.body.get("username") == ADMIN[0]:
        case.body["username"] = SUBJECT
