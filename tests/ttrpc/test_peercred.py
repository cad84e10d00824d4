"""SO_PEERCRED: the default peer check is same_user (same effective uid *and* gid)."""

from __future__ import annotations

import asyncio
import inspect
import os
import subprocess
import sys

import pytest

from runtime_v2 import ttrpc
from runtime_v2.ttrpc import PeerCredentials, same_user

from .conftest import EchoService, request_frame, serving

# The child runs as another user: it needs an interpreter that user can execute (the venv's may
# live under /root); it only uses the socket module.
_PYTHON = "/usr/bin/python3" if os.access("/usr/bin/python3", os.X_OK) else sys.executable

ME = PeerCredentials(pid=os.getpid(), uid=os.geteuid(), gid=os.getegid())


def test_same_user_accepts_our_own_credentials() -> None:
    assert same_user(ME)
    assert same_user(PeerCredentials(pid=1, uid=ME.uid, gid=ME.gid))  # the pid does not matter


def test_same_user_rejects_another_uid() -> None:
    assert not same_user(PeerCredentials(pid=ME.pid, uid=ME.uid + 1, gid=ME.gid))


def test_same_user_rejects_another_gid() -> None:
    assert not same_user(PeerCredentials(pid=ME.pid, uid=ME.uid, gid=ME.gid + 1))


def test_same_user_rejects_another_uid_and_gid() -> None:
    assert not same_user(PeerCredentials(pid=ME.pid, uid=ME.uid + 1, gid=ME.gid + 1))


def test_server_default_peer_check_is_same_user() -> None:
    default = inspect.signature(ttrpc.Server).parameters["check_peer"].default
    assert default is same_user


# A client in a child process with other credentials: connects, sends one Request for
# Echo/Nothing and prints how many bytes it got back before EOF (or "reset" when the server
# closed the connection under it).
_CLIENT = """
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(5)
s.connect(sys.argv[1])
got = b""
try:
    s.sendall(bytes.fromhex(sys.argv[2]))
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        got += chunk
        if len(got) >= 10:
            break
except (BrokenPipeError, ConnectionResetError):  # closed before or after the request
    print("reset")
    sys.exit(0)
print(len(got))
"""


async def _answer_bytes(socket_path: str, *, user: int, group: int) -> str:
    proc = await asyncio.create_subprocess_exec(
        _PYTHON,
        "-I",
        "-c",
        _CLIENT,
        socket_path,
        request_frame(1, "Nothing").hex(),
        user=user,
        group=group,
        extra_groups=[],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 10)
    assert proc.returncode == 0, err.decode()
    return out.decode().strip()


@pytest.mark.usefixtures("as_root")  # to run a client as another uid/gid
@pytest.mark.parametrize(
    ("user", "group", "accepted"),
    [
        (None, None, True),  # ourselves
        (65534, 65534, False),  # nobody: another uid and gid
        (0, 65534, False),  # root with another gid only
        (65534, 0, False),  # another uid only, our gid
    ],
)
async def test_default_server_checks_real_peers(
    sock_dir: str,
    socket_path: str,
    echo_service: EchoService,
    user: int | None,
    group: int | None,
    accepted: bool,
) -> None:
    os.chmod(sock_dir, 0o755)  # let another uid reach the socket; the socket itself is 0600
    async with serving(socket_path, echo_service.handlers()):  # default check_peer
        os.chmod(socket_path, 0o666)  # so only the peer check can refuse the connection
        got = await _answer_bytes(
            socket_path,
            user=os.geteuid() if user is None else user,
            group=os.getegid() if group is None else group,
        )
    if accepted:
        assert got == "10"  # a response frame (header + empty payload) came back
    else:
        assert got in ("0", "reset")


async def test_client_reports_the_server_process_credentials(
    socket_path: str, echo_service: EchoService
) -> None:
    async with serving(socket_path, echo_service.handlers()):
        client = await ttrpc.Client.connect(socket_path)
        async with client:
            assert client.peer_credentials() == PeerCredentials(
                os.getpid(), os.geteuid(), os.getegid()
            )
        assert client.peer_credentials() is None  # closed: nobody at the other end
