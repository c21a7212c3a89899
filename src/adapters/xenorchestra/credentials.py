"""Where the XO credentials come from, now: fixed values, or files that may change.

A token rotated in XO reaches the CCM through a file: ``tokenFile`` /
``passwordFile`` (or the cloud config itself, when it was read from a file that
holds ``token`` or ``password``). Kubernetes updates a mounted Secret by writing a
new directory and swapping a symlink, so the path stays and the file behind it
changes. The source:

- stats its files (following links: device, inode, size, mtime) at most once per
  ``check_interval`` seconds, and only when a request is about to be sent, in a
  worker thread (never on the event loop); it rereads them only when a stamp moved;
- rereads them at once when XO refused what was sent (:meth:`CredentialSource.refresh`):
  a token revoked in XO a moment before the kubelet updated the volume, or between two
  stat checks, costs one refused attempt, not a failed pass;
- keeps the credentials it has when a reread fails (a file half written, a broken
  config), saying so once per distinct problem;
- registers every value it reads as a secret, so no log line or event shows it, and
  names files, never values.

Each set of credentials has a ``generation``: a request refused with generation
``g`` is retried only when newer credentials than ``g`` are in hand, so ten requests
refused together cause one reread, and a token XO really refuses fails once.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from loguru import logger
from pydantic import SecretStr

from adapters.config import CloudConfig, ConfigError, load_config_file, read_secret_file
from adapters.logging_setup import register_secret
from adapters.xenorchestra.auth import Credentials
from domain.errors import AuthenticationError

#: What a file looked like when last read: (device, inode, size, mtime ns); None: absent.
Stamp = tuple[int, int, int, int] | None

#: Reads the credentials (blocking) and says which files they came from.
Loader = Callable[[], tuple[Credentials, Sequence[Path]]]

DEFAULT_CHECK_INTERVAL = 1.0


def _stamp(path: Path) -> Stamp:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


@dataclass(frozen=True, slots=True)
class _Current:
    generation: int
    credentials: Credentials
    headers: Mapping[str, str]
    stamps: Mapping[Path, Stamp]


@dataclass(frozen=True, slots=True)
class _Poll:
    """What a check in the worker thread found: new credentials, or a problem, or nothing."""

    stamps: Mapping[Path, Stamp]
    loaded: Credentials | None = None
    problem: str = ""


class CredentialSource:
    """The credentials to send with the next XO request (see the module docstring)."""

    def __init__(
        self,
        load: Loader,
        *,
        method: str,
        check_interval: float = DEFAULT_CHECK_INTERVAL,
        watching: bool = True,
    ) -> None:
        self._load = load
        self._method = method
        self._interval = check_interval
        self._watching = watching
        self._current: _Current | None = None
        self._next_check = 0.0
        self._lock = asyncio.Lock()
        self._last_problem = ""
        #: how many times the files were read (tests prove a burst of 401s reads once)
        self.reads = 0

    @classmethod
    def fixed(cls, credentials: Credentials) -> CredentialSource:
        """Credentials that never change (inline values, ``XOA_*`` variables)."""
        source = cls(lambda: (credentials, ()), method=credentials.method, watching=False)
        source._current = _Current(1, credentials, credentials.headers(), {})
        return source

    @classmethod
    def from_config(
        cls, config: CloudConfig, *, check_interval: float = DEFAULT_CHECK_INTERVAL
    ) -> CredentialSource:
        """The config's credentials: fixed when nothing can change, else followed
        through ``tokenFile``/``passwordFile`` and, for a config read from a file, that
        file (its ``token``/``password`` and which files it names)."""
        method = "token" if config.uses_token else "basic"
        if config.source is None and not config.credential_files:
            return cls.fixed(_credentials_of(config, _inline_secret))
        source = config.source

        said: set[tuple[str, ...]] = set()

        def load() -> tuple[Credentials, Sequence[Path]]:
            current = config
            if source is not None:
                try:
                    current = load_config_file(source)
                except ConfigError as err:
                    raise ValueError(str(err)) from None
                others = _changed_keys(config, current)
                if others and others not in said:
                    said.add(others)
                    logger.warning(
                        "cloud config {} changed: its credentials are used now, the other "
                        "keys ({}) at the next restart",
                        source,
                        ", ".join(others),
                    )
            files = current.credential_files
            credentials = _credentials_of(current, _file_or_inline)
            return credentials, ((source,) if source is not None else ()) + files

        return cls(load, method=method, check_interval=check_interval)

    @property
    def method(self) -> str:
        """``token`` or ``basic`` (as last read)."""
        return self._current.credentials.method if self._current else self._method

    @property
    def generation(self) -> int:
        return self._current.generation if self._current else 0

    def __repr__(self) -> str:
        return f"CredentialSource(method={self.method!r}, generation={self.generation})"

    async def current(self) -> tuple[int, Mapping[str, str]]:
        """The generation and the header that authenticates the next request."""
        now = time.monotonic()
        current = self._current
        if current is None or (self._watching and now >= self._next_check):
            async with self._lock:
                if self._current is None or (
                    self._watching and time.monotonic() >= self._next_check
                ):
                    await self._check(force=self._current is None)
            current = self._current
            assert current is not None  # _check installs credentials or raises
        return current.generation, current.headers

    async def refresh(self, *, seen: int) -> bool:
        """XO refused the credentials of generation ``seen``: reread the files now.
        True when newer credentials are in hand (retry with them), False when these
        are still the newest (the refusal stands)."""
        if not self._watching:
            return False
        async with self._lock:
            if self.generation == seen:
                await self._check(force=True)
        return self.generation != seen

    async def _check(self, *, force: bool) -> None:
        """Under the lock: poll in a thread, then install what it found, on the loop."""
        known = self._current.stamps if self._current else {}
        poll = await asyncio.to_thread(self._poll, known, force)
        self._next_check = time.monotonic() + self._interval
        if poll.problem:
            if self._current is None:
                raise AuthenticationError(f"Xen Orchestra credentials: {poll.problem}")
            if poll.problem != self._last_problem:
                logger.warning(
                    "Xen Orchestra credentials: {} (keeping the ones read before)", poll.problem
                )
            self._last_problem = poll.problem
            return
        self._last_problem = ""
        if poll.loaded is None:
            return
        if self._current is not None and poll.loaded == self._current.credentials:
            self._current = _Current(
                self._current.generation,
                self._current.credentials,
                self._current.headers,
                poll.stamps,
            )
            return
        generation = self.generation + 1
        self._current = _Current(generation, poll.loaded, poll.loaded.headers(), poll.stamps)
        if generation > 1:
            logger.info(
                "Xen Orchestra credentials reread from {} ({} authentication)",
                ", ".join(str(p) for p in poll.stamps) or "the config",
                poll.loaded.method,
            )

    def _poll(self, known: Mapping[Path, Stamp], force: bool) -> _Poll:
        """In a worker thread: stat the files; read them when forced or when one moved."""
        stamps = {path: _stamp(path) for path in known}
        if not force and known and stamps == known:
            return _Poll(stamps=known)
        try:
            self.reads += 1
            credentials, files = self._load()
        except ValueError as err:
            return _Poll(stamps=known, problem=str(err))
        for secret in (credentials.token, credentials.password):
            if secret is not None:
                register_secret(secret.get_secret_value())
        # Stamps of what was read (a change during the read is seen at the next check).
        fresh = {path: stamps.get(path, _stamp(path)) for path in files}
        return _Poll(stamps=fresh, loaded=credentials)


#: The keys a rotation may change: read again from the file, used at once.
_CREDENTIAL_KEYS = frozenset({"token", "username", "password", "token_file", "password_file"})


def _changed_keys(before: CloudConfig, after: CloudConfig) -> tuple[str, ...]:
    """The keys other than the credentials whose values differ (by their YAML names)."""
    old, new = before.model_dump(), after.model_dump()
    fields = CloudConfig.model_fields
    return tuple(
        sorted(
            fields[key].alias or key
            for key in old
            if key not in _CREDENTIAL_KEYS and old[key] != new.get(key)
        )
    )


def _inline_secret(value: SecretStr | None, _path: Path | None) -> SecretStr | None:
    return value


def _file_or_inline(value: SecretStr | None, path: Path | None) -> SecretStr | None:
    """The secret of ``path`` when the config names one (blocking read), else ``value``."""
    return SecretStr(read_secret_file(path)) if path is not None else value


def _credentials_of(
    config: CloudConfig, secret: Callable[[SecretStr | None, Path | None], SecretStr | None]
) -> Credentials:
    """The config's credentials, by xenorchestra-k8s-common's rule (token, else the pair)."""
    if config.uses_token:
        return Credentials(token=secret(config.token, config.token_file))
    return Credentials(
        username=config.username, password=secret(config.password, config.password_file)
    )
