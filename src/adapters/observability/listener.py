"""The secure port's listening socket, bound as Go's ``net.Listen("tcp", addr)`` binds it.

Kubernetes components listen with Go's network ``tcp``, where a wildcard address
(``0.0.0.0``, ``::`` or empty) is one IPv6 socket bound to ``[::]`` with
``IPV6_V6ONLY`` off whenever the host has IPv6: it accepts IPv4 and IPv6 clients
alike, and Go reports (and logs) it as ``[::]:PORT``. Only on a host without IPv6
is it an IPv4 socket on ``0.0.0.0``. asyncio's own binding of ``::`` sets
``IPV6_V6ONLY``, so IPv4 probes fail where the Go CCM answers them: the socket is
made here instead, and handed to the server.

A specific address is bound as given. ``SO_REUSEADDR`` is always set (Go sets it on
Linux listeners), ``SO_REUSEPORT`` with ``--permit-port-sharing``.
"""

from __future__ import annotations

import errno
import ipaddress
import socket

#: errno values that mean "no IPv6 here", where Go falls back to IPv4.
_NO_IPV6 = (errno.EAFNOSUPPORT, errno.EADDRNOTAVAIL, errno.EPROTONOSUPPORT)


def _wildcard(address: str) -> bool:
    if address in ("", "*"):
        return True
    try:
        return ipaddress.ip_address(address).is_unspecified
    except ValueError:
        return False


def _socket(family: socket.AddressFamily, *, reuse_port: bool) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    except BaseException:
        sock.close()
        raise
    return sock


def _bound(
    family: socket.AddressFamily, host: str, port: int, *, reuse_port: bool
) -> socket.socket:
    sock = _socket(family, reuse_port=reuse_port)
    try:
        sock.bind((host, port))
    except BaseException:
        sock.close()
        raise
    return sock


def listen_backlog() -> int:
    """Go's listen backlog: the kernel's ``somaxconn`` (connections waiting to be
    accepted cost the process nothing; a full queue drops new SYNs, and a probe's
    dropped SYN is retried only after a second)."""
    try:
        with open("/proc/sys/net/core/somaxconn") as handle:
            return max(1, min(int(handle.read().strip()), 65535))
    except (OSError, ValueError):
        return socket.SOMAXCONN


def bind(address: str, port: int, *, reuse_port: bool = False) -> socket.socket:
    """A non-blocking socket listening on ``address:port`` (see the module doc);
    OSError when it cannot be bound (the port is taken, the address is not local)."""
    if _wildcard(address):
        try:
            sock = _bound(socket.AF_INET6, "::", port, reuse_port=reuse_port)
        except OSError as err:
            if err.errno not in _NO_IPV6:
                raise
            sock = _bound(socket.AF_INET, "0.0.0.0", port, reuse_port=reuse_port)
    else:
        ip = ipaddress.ip_address(address)
        family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
        sock = _bound(family, str(ip), port, reuse_port=reuse_port)
    try:
        sock.listen(listen_backlog())
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def describe(sock: socket.socket) -> str:
    """``host:port`` of what the socket is bound to, as Go prints a listener's
    address (``[::]:10258``, ``127.0.0.1:10258``), and which clients it reaches."""
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    if sock.family == socket.AF_INET6 and _wildcard(host):
        v6only = sock.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY)
        reach = "every IPv6 address" if v6only else "every IPv4 and IPv6 address"
        return f"{shown} ({reach})"
    if _wildcard(host):
        return f"{shown} (every IPv4 address)"
    return shown
