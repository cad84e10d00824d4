"""ttrpc socket addresses -> the name to pass to ``connect``/``bind`` (containerd's
``pkg/dialer`` and ``pkg/shim/util.go`` address forms)."""

from __future__ import annotations

from runtime_v2.ttrpc._errors import Code, StatusError

__all__ = ["socket_name"]


def socket_name(address: str) -> str:
    """Return the AF_UNIX socket name for ``address``.

    ``unix:///path`` (or ``unix:/path``) and ``/path`` name a filesystem socket; an address with
    no scheme that is not absolute names an **abstract** socket (NUL + address), as containerd's
    ``AnonDialer`` does. Other schemes (vsock://, hvsock://) are not supported.

    >>> socket_name("unix:///run/containerd/s/abc")
    '/run/containerd/s/abc'
    >>> socket_name("shim-test")
    '\\x00shim-test'
    """
    if not address:
        raise StatusError(Code.INVALID_ARGUMENT, "ttrpc address is empty")
    if address.startswith("unix://"):
        path = address[len("unix://") :]
    elif address.startswith("unix:"):
        path = address[len("unix:") :]
    elif "://" in address:
        scheme = address.split("://", 1)[0]
        raise StatusError(
            Code.UNIMPLEMENTED, f"ttrpc address {address!r}: scheme {scheme!r} is not supported"
        )
    elif address.startswith("/") or address.startswith("\0"):
        return address
    else:
        return "\0" + address
    if not path:
        raise StatusError(Code.INVALID_ARGUMENT, f"ttrpc address {address!r} names no socket path")
    if path.startswith("@"):  # Go's net package spells abstract names with a leading "@"
        return "\0" + path[1:]
    return path
