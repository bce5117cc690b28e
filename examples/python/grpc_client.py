"""The gRPC AuthService with grpcio: Login, GetVerifiedUser, Authorize.

The stubs are generated from proto/ at run time with grpcio-tools into a temporary
directory (set WARDEN_PROTO_DIR to use another copy of the protos). A refused call carries
google.rpc.ErrorInfo whose `reason` is Warden's error code; grpcio shows the status code and
message.
"""

from __future__ import annotations

import importlib
import importlib.resources
import os
import sys
import tempfile
from pathlib import Path

import grpc
from grpc_tools import protoc

from warden_example import GRPC_TARGET, PASSWORD, USERNAME

PROTO_DIR = Path(os.environ.get("WARDEN_PROTO_DIR", Path(__file__).resolve().parents[2] / "proto"))


def generate_stubs(out: str) -> None:
    """Python modules for every .proto under PROTO_DIR, into `out` (importable as warden.*)."""
    protos = sorted(str(p.relative_to(PROTO_DIR)) for p in PROTO_DIR.rglob("*.proto"))
    includes = importlib.resources.files("grpc_tools") / "_proto"  # google/protobuf/*.proto
    args = ["protoc", f"-I{PROTO_DIR}", f"-I{includes}", f"--python_out={out}", f"--grpc_python_out={out}", *protos]
    if protoc.main(args) != 0:
        raise SystemExit(f"protoc failed for {protos}")
    sys.path.insert(0, out)
    importlib.invalidate_caches()


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="warden-stubs-") as out:
        generate_stubs(out)
        from warden.auth.v1 import auth_pb2, auth_pb2_grpc

        with grpc.insecure_channel(GRPC_TARGET) as channel:
            auth = auth_pb2_grpc.AuthServiceStub(channel)
            tokens = auth.Login(auth_pb2.LoginRequest(username=USERNAME, password=PASSWORD), timeout=10)
            print(f"Login: {tokens.token_type} token, expires in {tokens.expires_in} s")

            user = auth.GetVerifiedUser(auth_pb2.GetVerifiedUserRequest(access_token=tokens.access_token), timeout=10)
            print(f"GetVerifiedUser: {user.username} ({user.user_id}) roles={list(user.roles)}")

            for permission in ("users:read", "reports:export"):
                answer = auth.Authorize(
                    auth_pb2.AuthorizeRequest(access_token=tokens.access_token, permission=permission), timeout=10
                )
                print(f"Authorize {permission}: allowed={answer.allowed} {answer.code}")

            try:
                auth.GetVerifiedUser(auth_pb2.GetVerifiedUserRequest(access_token="not-a-token"), timeout=10)
            except grpc.RpcError as e:
                print(f"GetVerifiedUser with a bad token: {e.code().name} {e.details()}")
            else:
                raise SystemExit("a bad token was accepted")


if __name__ == "__main__":
    main()
