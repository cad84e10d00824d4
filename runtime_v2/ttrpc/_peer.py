"""SO_PEERCRED: who is at the other end of a unix socket (used by server and client)."""

from __future__ import annotations

import os
import socket
import struct

import attrs

__all__ = ["PeerCredentials", "read_peer_credentials", "same_user"]

_UCRED = struct.Struct("3i")


@attrs.frozen
class PeerCredentials:
    """The SO_PEERCRED credentials of the process at the other end of a connection."""

    pid: int
    uid: int
    gid: int


def read_peer_credentials(sock: socket.socket) -> PeerCredentials:
    """Read ``sock``'s peer credentials; raises OSError when the socket has none."""
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
    return PeerCredentials(*_UCRED.unpack(raw))


def same_user(peer: PeerCredentials) -> bool:
    """Default peer check: the client runs with this process's effective uid and gid."""
    return peer.uid == os.geteuid() and peer.gid == os.getegid()
