"""Credentials that change while the CCM runs, reread the way client-go rereads them.

The kubernetes package reads a kubeconfig user's ``tokenFile`` once, and refreshes
exec and auth-provider credentials only when they carry an expiry: a projected
token rotated under ``--kubeconfig`` or ``--authentication-kubeconfig`` ended in
401s for good. client-go, and this module:

- a token file (a kubeconfig's ``tokenFile``, the in-cluster service account
  token) is read again when it changed (its ``stat``), at least every 50 s (the
  cached file token source: a minute, less 10 s of leeway) and after a 401; a file
  that cannot be read leaves the token in use, with a warning at most once a
  minute ("Unable to rotate token");
- an exec plugin or an auth provider (gcp with ``cmd-path``, oidc) keeps the
  package's refresh when its credential expires, and is run again after a 401 (at
  most once a second), from the kubeconfig on disk: an exec credential without an
  expiry is otherwise used until the API server refuses it.

:class:`Rotation` is the configuration's ``refresh_api_key_hook``: the package
calls it before making any request's Authorization header (the loop transport and
the generated client both go through ``Configuration.auth_settings()``), so every
client sharing the configuration sees the new token. It reads files and runs
plugins: it runs in the callers' threads, never on the event loop. A 401 is
reported with :func:`invalidate`.

Everything about rereading credentials lives here, so that it moves with the
requests when the Kubernetes I/O stack changes.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kubernetes import client as k8s
from kubernetes.config.config_exception import ConfigException
from kubernetes.config.incluster_config import SERVICE_TOKEN_FILENAME
from kubernetes.config.kube_config import KubeConfigLoader, KubeConfigMerger
from loguru import logger

#: A token file is read again when its last read is this old (client-go: 1 min - 10 s).
TOKEN_FILE_MAX_AGE = 50.0
#: At most one plugin run per this many seconds after 401s.
PLUGIN_RERUN_INTERVAL = 1.0
#: At most one "cannot reread" warning per this many seconds.
WARN_EVERY = 60.0
_PLUGIN_PROVIDERS = ("gcp", "oidc")

Clock = Callable[[], float]


def _signature(path: Path) -> tuple[int, int, int, int] | None:
    try:
        st = path.stat()  # follows symlinks: a projected volume swaps ..data
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


class Rotation:
    """Keeps ``configuration.api_key['BearerToken']`` current (see the module doc).

    Either ``token_file`` (reread as it changes) or ``reload`` (a fresh load of the
    kubeconfig, which runs the plugin again) with ``loaded``, the configuration the
    package's own loader fills (its hook refreshes an expiring credential).
    """

    def __init__(
        self,
        *,
        token_file: Path | None = None,
        token: str = "",
        reload: Callable[[], k8s.Configuration] | None = None,
        loaded: k8s.Configuration | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self._token_file = token_file
        self._token = token.strip()
        self._signature = _signature(token_file) if token_file is not None else None
        self._read_at = clock()
        self._reload = reload
        self._loaded = loaded
        self._invalid = False
        self._rerun_at = float("-inf")
        self._warned_at = float("-inf")
        #: Times the credentials were read again (tests read it).
        self.rereads = 0

    def invalidate(self) -> None:
        """The API server answered 401: read the credentials again before the next request."""
        with self._lock:
            self._invalid = True

    def __call__(self, configuration: k8s.Configuration) -> None:
        with self._lock:
            if self._token_file is not None:
                self._from_file(self._token_file)
                configuration.api_key["BearerToken"] = f"Bearer {self._token}"
            elif self._reload is not None:
                self._from_plugin()
                assert self._loaded is not None
                token = self._loaded.api_key.get("BearerToken")
                if token:
                    configuration.api_key["BearerToken"] = token

    # -- a token file ---------------------------------------------------------------
    def _from_file(self, path: Path) -> None:
        now = self._clock()
        signature = _signature(path)
        due = (
            self._invalid
            or signature != self._signature
            or now - self._read_at >= TOKEN_FILE_MAX_AGE
        )
        if not due:
            return
        self._invalid = False
        self._read_at = now
        try:
            token = path.read_text().strip()
            if not token:
                raise ValueError("the file is empty")
        except (OSError, ValueError) as err:
            self._warn(f"Unable to rotate token: {path}: {err}; the token read before is used")
            return
        self._signature = signature
        if token != self._token:
            self.rereads += 1
            logger.info("kube credentials: the token of {} changed: using the new one", path)
        self._token = token

    # -- an exec plugin or an auth provider ---------------------------------------------
    def _from_plugin(self) -> None:
        assert self._loaded is not None and self._reload is not None
        now = self._clock()
        if self._invalid and now - self._rerun_at >= PLUGIN_RERUN_INTERVAL:
            self._invalid = False
            self._rerun_at = now
            try:
                self._loaded = self._reload()
            except Exception as err:  # a plugin may fail in any way: keep what works
                self._warn(f"kube credentials: the plugin did not run again: {err}")
                return
            self.rereads += 1
            logger.info("kube credentials: 401 from the API server: the plugin ran again")
            return
        hook = self._loaded.refresh_api_key_hook
        if hook is not None:
            try:
                hook(self._loaded)  # the package's refresh of an expiring credential
            except Exception as err:
                self._warn(f"kube credentials: refreshing the expired credential failed: {err}")

    def _warn(self, message: str) -> None:
        now = self._clock()
        if now - self._warned_at >= WARN_EVERY:
            self._warned_at = now
            logger.warning("{}", message)


def invalidate(configuration: k8s.Configuration | None) -> None:
    """After a 401: the next request reads the credentials again (if they can change)."""
    hook = configuration.refresh_api_key_hook if configuration is not None else None
    if isinstance(hook, Rotation):
        hook.invalidate()


def _load(kubeconfig: str, context: str | None) -> tuple[k8s.Configuration, Any]:
    """The package's ``load_kube_config`` (without writing anything back), and the
    current user's kubeconfig entry (a ConfigNode: its ``path`` is the file it came
    from, relative paths in it are relative to that file's directory)."""
    merger = KubeConfigMerger(kubeconfig)  # type: ignore[no-untyped-call]
    merged: Any = merger.config
    if merged is None:
        raise ConfigException("Invalid kube-config file. No configuration found.")
    loader = KubeConfigLoader(  # type: ignore[no-untyped-call]
        config_dict=merged, active_context=context, config_base_path=None
    )
    configuration = k8s.Configuration()
    loader.load_and_set(configuration)  # type: ignore[no-untyped-call]
    name = (loader.current_context.get("context") or {}).get("user")
    if not name or not merged.safe_get("users"):
        return configuration, None
    entry = merged["users"].get_with_name(name, safe=True)
    if entry is None or entry.safe_get("user") is None:
        return configuration, None
    return configuration, entry["user"]


def load_kubeconfig(kubeconfig: str, context: str | None) -> k8s.Configuration:
    """Blocking: the kubeconfig's configuration, its credentials kept current."""
    configuration, user = _load(kubeconfig, context)
    if user is None:
        return configuration
    # The package's order: an auth provider it knows, then token/tokenFile, then exec.
    provider = user.safe_get("auth-provider")
    provider_name = provider.get("name") if isinstance(provider, dict) else None
    token_file = user.safe_get("tokenFile")
    token = user.safe_get("token")
    by_provider = provider_name in _PLUGIN_PROVIDERS
    if by_provider or (user.safe_get("exec") and not token_file and not token):
        if "BearerToken" not in configuration.api_key:
            return configuration  # a plugin that gave a client certificate: nothing to refresh
        loaded = k8s.Configuration()
        package_hook = configuration.refresh_api_key_hook
        if package_hook is not None:
            package_hook(loaded)  # the same loader, filling a configuration of its own
        _install(
            configuration, Rotation(reload=lambda: _load(kubeconfig, context)[0], loaded=loaded)
        )
    elif token_file:
        base = Path(os.path.abspath(os.path.dirname(user.path or ".")))
        path = base / os.path.expanduser(str(token_file))
        token = str(configuration.api_key.get("BearerToken", "")).removeprefix("Bearer ")
        _install(configuration, Rotation(token_file=path, token=token))
    return configuration


def _install(configuration: k8s.Configuration, rotation: Rotation) -> None:
    configuration.refresh_api_key_hook = rotation  # type: ignore[assignment]


def watch_in_cluster_token(configuration: k8s.Configuration) -> k8s.Configuration:
    """The in-cluster service account's token reread as a token file (the package
    rereads it every minute, never after a 401)."""
    path = Path(SERVICE_TOKEN_FILENAME)
    current = configuration.api_key.pop("authorization", None) or configuration.api_key.get(
        "BearerToken", ""
    )
    token = str(current).split(" ", 1)[-1]
    _install(configuration, Rotation(token_file=path, token=token))
    configuration.api_key["BearerToken"] = f"Bearer {token.strip()}"
    return configuration
