"""Client certificates as Go's secure serving takes them: asked for, never a reason
to fail the handshake; whether the client CA signed one is the authenticator's
business (an unknown CA is a ``401``, or the bearer token that came with it decides).

Python's ``ssl`` has no switch for that. With ``CERT_OPTIONAL``, OpenSSL verifies a
client certificate during the handshake and aborts it with an alert when no client
CA signed it: the client sees a TLS error where a Go component answers 401. So the
server contexts get an OpenSSL verify callback (``SSL_CTX_set_verify``, through
``ctypes``) that lets the handshake go on and records, per connection, what
OpenSSL's own verification concluded. The verification itself is untouched: the
same store, flags and checks decide.

:func:`peer_certificate` is the one way to read a client certificate: ``ssl``'s
``getpeercert()`` decodes any certificate once ``CERT_OPTIONAL`` is set, so with the
callback installed a decoded certificate proves nothing by itself. A connection is
``VERIFIED`` only when the callback saw OpenSSL pass its verification on that very
connection and saw no step fail. Session resumption is turned off on these contexts
(no TLS 1.3 tickets, no TLS 1.2 tickets or session cache): a resumed session carries
its first connection's certificate without verifying it again, and would otherwise
come back without a verdict (and be refused, as fail-closed as it is useless).

``ssl`` does not expose a context's ``SSL_CTX``: it is read from CPython's
``PySSLContext`` (its first field since Python 2; other projects rely on it too) and
checked against what ``ssl`` reports of the same context before anything is set.
When any step is not possible (another interpreter, OpenSSL not reachable, a check
that does not match) nothing is installed, the handshake fails as before, and
:func:`install` says so (the caller logs it once).
"""

from __future__ import annotations

import ctypes
import enum
import ssl
import sys
import weakref
from dataclasses import dataclass
from functools import cache
from typing import Any

_SSL_VERIFY_PEER = 0x01
_VERIFY_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.c_void_p)


class Verdict(enum.Enum):
    NONE = "none"  # no certificate presented
    VERIFIED = "verified"  # signed by the client CA, every check passed
    UNVERIFIED = "unverified"  # presented, but OpenSSL's verification failed


@dataclass(frozen=True, slots=True)
class PeerCertificate:
    verdict: Verdict
    #: ``getpeercert()``'s decoded form (only for VERIFIED).
    decoded: dict[str, Any] | None = None


#: Connections (their ``ssl.SSLObject``) where OpenSSL's verification passed, and
#: those where a step failed and the callback let the handshake go on anyway.
_passed: weakref.WeakSet[Any] = weakref.WeakSet()
_failed: weakref.WeakSet[Any] = weakref.WeakSet()
#: Contexts whose handshakes go through the callback.
_installed: weakref.WeakSet[ssl.SSLContext] = weakref.WeakSet()
#: SSL_CTX_ctrl commands and values (ssl.h) for the server's session cache.
_SSL_CTRL_SET_SESS_CACHE_MODE = 44
_SSL_CTRL_GET_SESS_CACHE_MODE = 45
_SSL_SESS_CACHE_OFF = 0


@dataclass(frozen=True)
class _OpenSSL:
    set_verify: Any
    get_verify_mode: Any
    get_options: Any
    store_get_ex_data: Any
    store_idx: int
    ssl_get_ex_data: Any
    ctrl: Any


@cache
def _openssl() -> _OpenSSL | None:
    if sys.implementation.name != "cpython":
        return None
    try:
        import _ssl

        lib = ctypes.CDLL(_ssl.__file__)
        set_verify = lib.SSL_CTX_set_verify
        set_verify.argtypes = [ctypes.c_void_p, ctypes.c_int, _VERIFY_CALLBACK]
        set_verify.restype = None
        get_verify_mode = lib.SSL_CTX_get_verify_mode
        get_verify_mode.argtypes = [ctypes.c_void_p]
        get_verify_mode.restype = ctypes.c_int
        get_options = lib.SSL_CTX_get_options
        get_options.argtypes = [ctypes.c_void_p]
        get_options.restype = ctypes.c_uint64
        store_get_ex_data = lib.X509_STORE_CTX_get_ex_data
        store_get_ex_data.argtypes = [ctypes.c_void_p, ctypes.c_int]
        store_get_ex_data.restype = ctypes.c_void_p
        store_idx_fn = lib.SSL_get_ex_data_X509_STORE_CTX_idx
        store_idx_fn.argtypes = []
        store_idx_fn.restype = ctypes.c_int
        ssl_get_ex_data = lib.SSL_get_ex_data
        ssl_get_ex_data.argtypes = [ctypes.c_void_p, ctypes.c_int]
        ssl_get_ex_data.restype = ctypes.c_void_p
        ctrl = lib.SSL_CTX_ctrl
        ctrl.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_long, ctypes.c_void_p]
        ctrl.restype = ctypes.c_long
        return _OpenSSL(
            set_verify,
            get_verify_mode,
            get_options,
            store_get_ex_data,
            int(store_idx_fn()),
            ssl_get_ex_data,
            ctrl,
        )
    except (OSError, AttributeError, ImportError):
        return None


def _connection_of(store_ctx: int) -> Any:
    """The ``ssl.SSLObject`` being verified: OpenSSL's SSL of this store context,
    whose application data ``_ssl`` sets to its ``_SSLSocket`` (its ``owner`` is the
    SSLObject asyncio made)."""
    lib = _openssl()
    if lib is None or not store_ctx:
        return None
    ssl_ptr = lib.store_get_ex_data(store_ctx, lib.store_idx)
    if not ssl_ptr:
        return None
    app = lib.ssl_get_ex_data(ssl_ptr, 0)
    if not app:
        return None
    socket_object = ctypes.cast(app, ctypes.py_object).value
    return getattr(socket_object, "owner", None)


def _record(preverify_ok: int, store_ctx: int) -> int:
    """Called by OpenSSL for every certificate of the chain and every error: the
    outcome is recorded for the connection, and a failed step no longer aborts the
    handshake. Anything unexpected: OpenSSL's own answer (a failed step aborts)."""
    try:
        connection = _connection_of(store_ctx)
        if connection is None:
            return preverify_ok
        (_passed if preverify_ok else _failed).add(connection)
        return 1
    except Exception:
        return preverify_ok


#: The C function pointer OpenSSL calls; kept alive as long as the module.
_verify = _VERIFY_CALLBACK(_record)


def _ssl_ctx_pointer(context: ssl.SSLContext) -> int | None:
    """CPython's ``PySSLContext.ctx``: the field right after the object header."""
    pointer = ctypes.c_void_p.from_address(id(context) + object.__basicsize__).value
    return pointer or None


def install(*contexts: ssl.SSLContext) -> bool:
    """Make the server's contexts (``CERT_OPTIONAL``, the client CA loaded; the SNI
    ones with the main one) accept any client certificate at the handshake and
    record the verdict. All or none: False when it cannot be done for every one of
    them here (their handshakes then refuse unknown CAs, as before)."""
    lib = _openssl()
    if lib is None or not contexts:
        return False
    pointers: list[int] = []
    for context in contexts:
        if context.verify_mode != ssl.CERT_OPTIONAL:
            return False
        pointer = _ssl_ctx_pointer(context)
        if pointer is None or lib.get_options(pointer) != context.options:
            return False
        if lib.get_verify_mode(pointer) != _SSL_VERIFY_PEER:
            return False
        pointers.append(pointer)
    for context, pointer in zip(contexts, pointers, strict=True):
        context.num_tickets = 0
        context.options |= ssl.OP_NO_TICKET
        lib.ctrl(pointer, _SSL_CTRL_SET_SESS_CACHE_MODE, _SSL_SESS_CACHE_OFF, None)
        if lib.ctrl(pointer, _SSL_CTRL_GET_SESS_CACHE_MODE, 0, None) != _SSL_SESS_CACHE_OFF:
            return False
    for context, pointer in zip(contexts, pointers, strict=True):
        lib.set_verify(pointer, _SSL_VERIFY_PEER, _verify)
        _installed.add(context)
    return True


def peer_certificate(ssl_object: ssl.SSLObject | ssl.SSLSocket | None) -> PeerCertificate:
    """What the client presented on this connection, and whether to believe it."""
    if ssl_object is None:
        return PeerCertificate(Verdict.NONE)
    if not ssl_object.getpeercert(binary_form=True):
        return PeerCertificate(Verdict.NONE)
    decoded = ssl_object.getpeercert()
    if not decoded:  # a context that never asked for one (CERT_NONE)
        return PeerCertificate(Verdict.NONE)
    if ssl_object.context not in _installed:
        # No callback: OpenSSL aborted every handshake whose certificate failed.
        return PeerCertificate(Verdict.VERIFIED, decoded)
    if ssl_object in _passed and ssl_object not in _failed:
        return PeerCertificate(Verdict.VERIFIED, decoded)
    return PeerCertificate(Verdict.UNVERIFIED)
