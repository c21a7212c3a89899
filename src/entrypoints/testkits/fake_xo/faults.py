"""What can go wrong with the fake XO on purpose, and who may talk to it.

Faults reproduce what a CCM meets in production: a slow or overloaded XO
(latency, 5xx, 429 with ``Retry-After``), a hung one, a proxy answering
HTML, bodies and event frames that break decoding (``garbage.py``), a dead
event stream, an older XO (no events endpoint, plain-text 401)
and a revoked token. Each applies to every API request, or only to one
endpoint template (``GET /vms/{id}``) when ``endpoint`` is set.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import random
import time
import uuid
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

from entrypoints.testkits.fake_xo import garbage

GarbageMode = Literal[
    "html",
    "truncated",
    "shape",
    "no-id",
    "bad-encoding",
    "deep",
    "overflow",
    "wrong-types",
    "bad-utf8",
]
GARBAGE_MODES: tuple[str, ...] = ("html", "truncated", "shape", "no-id", *garbage.MODES)


@dataclass(slots=True)
class Faults:
    """The active faults; every field's default is "behave"."""

    #: seconds added before answering every API request
    latency: float = 0.0
    #: probability (0..1) of answering ``error_status`` instead
    error_rate: float = 0.0
    #: the next N API requests answer ``error_status``
    fail_next: int = 0
    error_status: int = 503
    #: ``Retry-After`` seconds sent with injected errors (None: no header)
    retry_after: float | None = None
    #: API requests never answer (until the fault is cleared or the client gives up)
    hang: bool = False
    #: 2xx bodies replaced: non-JSON, truncated JSON, wrong shape, objects without ids,
    #: or one of ``garbage.MODES`` (bad Content-Encoding, deep nesting, 1e400...)
    garbage: GarbageMode | None = None
    #: ``garbage.MODES`` spoil only this object (its answer, its entry in lists)
    target: str | None = None
    #: the next N VM event frames carry ``garbage`` (default html) instead of their data
    garble_frames: int = 0
    #: only requests to this endpoint template are affected (None: all)
    endpoint: str | None = None
    #: False: ``GET /events`` answers 404 like XO before 5.113
    events_enabled: bool = True
    #: event streams send no pings (a silently dead stream)
    mute_pings: bool = False
    #: 401 answered as text/plain ``Unauthorized`` like XO before 5.112
    legacy_auth_errors: bool = False
    #: False: ``/users`` answers 404 like XO's REST API before its users routes
    #: (which answered admins only)
    users_enabled: bool = True

    def applies_to(self, endpoint: str) -> bool:
        return self.endpoint is None or self.endpoint == endpoint

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def update(self, changes: dict[str, Any]) -> None:
        """Apply a partial update (from the control API); unknown keys are an error."""
        known = {f.name for f in fields(self)}
        unknown = set(changes) - known
        if unknown:
            raise ValueError(f"unknown fault(s): {', '.join(sorted(unknown))}")
        if changes.get("garbage") not in (None, *GARBAGE_MODES):
            raise ValueError(f"garbage must be one of {', '.join(GARBAGE_MODES)}")
        for key, value in changes.items():
            setattr(self, key, value)


@dataclass(frozen=True, slots=True)
class InjectedError:
    """The answer an injected failure replaces the real one with."""

    status: int
    message: str
    headers: dict[str, str]


class FaultInjector:
    """The active :class:`Faults` and their effect on one API request.

    ``set`` and ``clear`` change the faults (hung requests are released as
    soon as ``hang`` is off); :meth:`inject` runs before a request's handler:
    it waits (latency, hang) and returns the error to answer instead, if any.
    ``seed`` fixes the random draws of ``error_rate``.
    """

    def __init__(self, *, seed: int | None = None) -> None:
        self.active = Faults()
        self.random = random.Random(seed)
        self._hang_released = asyncio.Event()

    def set(self, **changes: Any) -> Faults:
        """Change some faults (``latency=0.1``, ``fail_next=2``, ``garbage="html"``...)."""
        self.active.update(changes)
        if not self.active.hang:
            self.release_hangs()
        return self.active

    def clear(self) -> Faults:
        self.active = Faults()
        self.release_hangs()
        return self.active

    def release_hangs(self) -> None:
        """Let every hung request go on (a cleared fault, or the server stopping)."""
        self._hang_released.set()
        self._hang_released = asyncio.Event()

    def applies_to(self, endpoint: str) -> bool:
        return self.active.applies_to(endpoint)

    async def inject(self, endpoint: str) -> InjectedError | None:
        faults = self.active
        if not faults.applies_to(endpoint):
            return None
        if faults.latency > 0:
            await asyncio.sleep(faults.latency)
        if faults.hang:
            await self._hang_released.wait()
        fail = faults.fail_next > 0
        if fail:
            faults.fail_next -= 1
        elif faults.error_rate > 0:
            fail = self.random.random() < faults.error_rate
        if not fail:
            return None
        headers = {}
        if faults.retry_after is not None:
            headers["Retry-After"] = f"{faults.retry_after:g}"
        status = faults.error_status
        message = "too many requests" if status == 429 else "injected failure"
        return InjectedError(status, message, headers)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request authenticated as: a user id, whether an admin, and for a
    non-admin limited by ACLs the ids of the objects it may see (None: no ACL, so
    XO lists nothing and answers 403 for every object)."""

    user_id: str
    admin: bool
    sees: frozenset[str] | None = None


def user_id_of(credential: str) -> str:
    """A stable user id per token or user name (XO's are uuids)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"fake-xo-user:{credential}"))


@dataclass(slots=True)
class AuthDB:
    """Tokens and users, as XO's authentication would see them.

    Failed password logins are throttled per user like XO: another try
    within 2 s answers 500 ``too fast authentication tries``. Re-adding a
    token changes its permission (an admin demoted while the CCM runs).
    """

    tokens: dict[str, bool] = field(default_factory=dict)  # token -> is admin
    users: dict[str, tuple[str, bool]] = field(default_factory=dict)  # name -> (password, admin)
    #: token -> ids of the objects an ACL-limited non-admin token sees
    acls: dict[str, frozenset[str]] = field(default_factory=dict)
    throttle: float = 2.0
    _last_failure: dict[str, float] = field(default_factory=dict)

    def add_token(self, *, token: str, admin: bool = True, sees: list[str] | None = None) -> None:
        self.tokens[token] = admin
        if sees is None or admin:
            self.acls.pop(token, None)
        else:
            self.acls[token] = frozenset(i.lower() for i in sees)

    def revoke_token(self, token: str) -> None:
        self.tokens.pop(token, None)
        self.acls.pop(token, None)

    def principal(self, token: str) -> Principal | None:
        admin = self.tokens.get(token)
        if admin is None:
            return None
        return Principal(user_id_of(token), admin, self.acls.get(token))

    def add_user(self, *, username: str, password: str, admin: bool = True) -> None:
        self.users[username] = (password, admin)

    def check_basic(self, header: str) -> Principal | Literal["throttled"] | None:
        """Any scheme is decoded as Basic (so Bearer fails, as in XO)."""
        _, _, encoded = header.partition(" ")
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError, ValueError):
            return None
        username, sep, password = decoded.partition(":")
        if not sep:
            return None
        now = time.monotonic()
        last = self._last_failure.get(username)
        if last is not None and now - last < self.throttle:
            return "throttled"
        entry = self.users.get(username)
        if entry is None or entry[0] != password:
            self._last_failure[username] = now
            return None
        return Principal(user_id_of(username), entry[1])
