"""The kubeconfig and its credentials: the one module that uses the ``kubernetes`` package.

The package loads a kubeconfig as client-go does (contexts, clusters, users, exec
and auth-provider plugins, the in-cluster service account): that is the mature
part, and the only one the CCM uses. Everything that talks to the API server (one
transport per client: :mod:`transport`) reads :class:`ApiConfig`, plain
values made from the package's ``Configuration`` here, and asks
:class:`Credentials` for the ``Authorization`` header.

Only the configuration loader is imported. ``kubernetes/__init__.py`` would import
the whole client (watch, stream, dynamic, informer, leader election), and
``requests_oauthlib`` (with ``requests`` and ``oauthlib``) is needed only to refresh
an OIDC token: they are imported when, and if, they are used (:func:`_package`),
about 6 MiB less for the process's whole life (measured on the production install).

Credentials that change while the CCM runs are reread the way client-go rereads them.
The package reads a kubeconfig user's ``tokenFile`` once, and refreshes exec and
auth-provider credentials only when they carry an expiry; client-go, and this module:

- a token file (a kubeconfig's ``tokenFile``, the in-cluster service account token)
  is read again when it changed (its ``stat``), at least every 50 s (the cached file
  token source: a minute, less 10 s of leeway) and after a 401; a file that cannot
  be read leaves the token in use, with a warning at most once a minute ("Unable to
  rotate token");
- an exec plugin or an auth provider (gcp with ``cmd-path``, oidc) keeps the
  package's refresh when its credential expires, and is run again after a 401 (at
  most once a second), from the kubeconfig on disk.

Everything here may block (files, plugins): callers run it in a thread, never on the
event loop.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
import sys
import threading
import time
import types
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loguru import logger

from adapters.kubernetes.errors import KubeConfigError


def _bare_package(name: str) -> types.ModuleType:
    """The installed package ``name`` as a module holding only its path: its submodules
    import, its ``__init__`` does not run."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise KubeConfigError("the kubernetes package is not installed")
    package = types.ModuleType(name)
    package.__path__ = list(spec.submodule_search_locations)
    package.__spec__ = spec
    return package


def _package() -> None:
    """Make ``import kubernetes.config`` load the configuration loader alone.

    The ``kubernetes`` package's own ``__init__`` imports every client module; a
    package module with only its path is enough for the submodules used here. And
    ``requests_oauthlib`` and ``oauthlib`` (an OIDC refresh's only needs) are left to
    their first use. A process that imported the real packages first keeps them.
    """
    if "kubernetes" not in sys.modules:
        sys.modules["kubernetes"] = _bare_package("kubernetes")
    if "requests_oauthlib" not in sys.modules:
        sys.modules["requests_oauthlib"] = _OnFirstUse("requests_oauthlib", "OAuth2Session")
    if not any(module in sys.modules for module in _OAUTHLIB):
        parent, child = (_OnFirstAttribute(module) for module in _OAUTHLIB)
        parent.oauth2 = child  # type: ignore[attr-defined]
        sys.modules.update(zip(_OAUTHLIB, (parent, child), strict=True))


#: Imported by the loader (``import oauthlib.oauth2``) for one exception class of the
#: OIDC refresh: 58 modules, about 0.9 MiB of the process's memory (measured on the
#: production install), left to the first attribute read.
_OAUTHLIB = ("oauthlib", "oauthlib.oauth2")


class _OnFirstAttribute(types.ModuleType):
    """Stands for ``oauthlib`` or ``oauthlib.oauth2`` until one of its attributes is
    read: then both are imported for real (replacing the stand-ins) and the read goes
    to the real module."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        _realize_oauthlib()
        return getattr(importlib.import_module(self.__name__), name)


def _realize_oauthlib() -> None:
    if not any(isinstance(sys.modules.get(m), _OnFirstAttribute) for m in _OAUTHLIB):
        return
    for module in _OAUTHLIB:
        if isinstance(sys.modules.get(module), _OnFirstAttribute):
            del sys.modules[module]
    importlib.import_module("oauthlib.oauth2")


@contextlib.contextmanager
def _without_generated_client() -> Iterator[None]:
    """While the loader is imported, ``kubernetes.client`` is a stand-in holding the real
    ``Configuration`` and an ``ApiClient`` that imports the real one when called.

    The loader imports ``ApiClient`` beside ``Configuration`` but calls it only to
    refresh an OIDC token, and importing it loads the generated client's machinery
    (about 1.5 MiB of the process's memory, measured on the production install).
    The stand-in leaves once the loader is imported: whoever imports
    ``kubernetes.client`` afterwards gets the real package.
    """
    if "kubernetes.client" in sys.modules:
        yield
        return
    stand_in = sys.modules["kubernetes.client"] = _bare_package("kubernetes.client")
    try:
        configuration = importlib.import_module("kubernetes.client.configuration")
        stand_in.Configuration = configuration.Configuration  # type: ignore[attr-defined]
        stand_in.ApiClient = _OnFirstUse.forward(  # type: ignore[attr-defined]
            "kubernetes.client.api_client", "ApiClient"
        )
        yield
    finally:
        if sys.modules.get("kubernetes.client") is stand_in:
            del sys.modules["kubernetes.client"]
        package = sys.modules.get("kubernetes")
        if getattr(package, "client", None) is stand_in:
            delattr(package, "client")


class _OnFirstUse(types.ModuleType):
    """Stands for a module until one of ``names`` is called: then the module is
    imported for real (replacing this one) and the call goes to it."""

    def __init__(self, module: str, *names: str) -> None:
        super().__init__(module)
        for name in names:
            setattr(self, name, self.forward(module, name))

    @staticmethod
    def forward(module: str, name: str) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            _realize_oauthlib()  # requests_oauthlib imports it: the real one
            if isinstance(sys.modules.get(module), _OnFirstUse):
                del sys.modules[module]
            return getattr(importlib.import_module(module), name)(*args, **kwargs)

        return call


_package()

with _without_generated_client():
    from kubernetes.client.configuration import Configuration
    from kubernetes.config import load_incluster_config
    from kubernetes.config.config_exception import ConfigException
    from kubernetes.config.incluster_config import SERVICE_TOKEN_FILENAME
    from kubernetes.config.kube_config import KubeConfigLoader, KubeConfigMerger

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
        reload: Callable[[], Configuration] | None = None,
        loaded: Configuration | None = None,
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

    def __call__(self, configuration: Configuration) -> None:
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


def invalidate(configuration: Configuration | None) -> None:
    """After a 401: the next request reads the credentials again (if they can change)."""
    hook = configuration.refresh_api_key_hook if configuration is not None else None
    if isinstance(hook, Rotation):
        hook.invalidate()


def _load(kubeconfig: str, context: str | None) -> tuple[Configuration, Any]:
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
    configuration = Configuration()
    loader.load_and_set(configuration)  # type: ignore[no-untyped-call]
    name = (loader.current_context.get("context") or {}).get("user")
    if not name or not merged.safe_get("users"):
        return configuration, None
    entry = merged["users"].get_with_name(name, safe=True)
    if entry is None or entry.safe_get("user") is None:
        return configuration, None
    return configuration, entry["user"]


def load_kubeconfig(kubeconfig: str, context: str | None) -> Configuration:
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
        loaded = Configuration()
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


def _install(configuration: Configuration, rotation: Rotation) -> None:
    configuration.refresh_api_key_hook = rotation  # type: ignore[assignment]


def watch_in_cluster_token(configuration: Configuration) -> Configuration:
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


# -- what the transport reads ------------------------------------------------------------
class Credentials:
    """The ``Authorization`` header of every request, kept current (blocking: a changed
    token file is read, a plugin may run). Shared by a client and its siblings."""

    def __init__(self, configuration: Configuration | None = None) -> None:
        self._configuration = configuration

    def authorization(self) -> str | None:
        """Blocking: the header's value (whitespace around the token dropped, as
        client-go drops a token file's newline), None without credentials."""
        if self._configuration is None:
            return None
        bearer = self._configuration.auth_settings().get("BearerToken")
        value = bearer.get("value") if bearer else None
        return trimmed_authorization(str(value)) if value else None

    def invalidate(self) -> None:
        """After a 401: the next :meth:`authorization` reads them again (if they can change)."""
        hook = self._configuration.refresh_api_key_hook if self._configuration else None
        if isinstance(hook, Rotation):
            hook.invalidate()


def trimmed_authorization(value: str) -> str:
    """Whitespace around the bearer token dropped, as client-go does for token files:
    ``echo tok | base64`` leaves a newline that no server would accept, and the
    kubernetes package keeps it. A control character inside is left for the send to
    refuse."""
    scheme, _, credential = value.strip().partition(" ")
    return f"{scheme} {credential.strip()}" if credential else scheme


@dataclass(frozen=True)
class ApiConfig:
    """Where the API server is and how to reach it, as the kubeconfig says.

    ``verify`` False skips TLS verification; ``ca_file``/``ca_data`` the CA to trust
    (else the system's); ``cert_file``/``key_file`` a client certificate;
    ``server_name`` the name to verify (``tls-server-name``); ``proxy`` an HTTP(S)
    proxy already checked against ``no_proxy`` (None: direct)."""

    host: str
    verify: bool = True
    ca_file: str | None = None
    ca_data: str | bytes | None = None
    cert_file: str | None = None
    key_file: str | None = None
    server_name: str | None = None
    proxy: str | None = None
    proxy_headers: Mapping[str, str] | None = None
    credentials: Credentials = field(default_factory=Credentials, compare=False)

    @property
    def https(self) -> bool:
        return self.host.startswith("https://")


def load(
    kubeconfig: str | None, context: str | None = None, master: str | None = None
) -> ApiConfig:
    """Blocking: the kubeconfig's API server (or the in-cluster service account's).

    ``master`` (``--master``) overrides the server, as client-go's
    ``BuildConfigFromFlags`` does; alone, it is the server with no credentials. What
    the transport cannot follow (a SOCKS proxy, ``assert_hostname``) is refused here,
    in one line, so a bad configuration fails at start.
    """
    if master and not kubeconfig:
        return ApiConfig(host=master.rstrip("/"))
    try:
        if kubeconfig:
            configuration = load_kubeconfig(kubeconfig, context)
        else:
            configuration = Configuration()
            load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
            watch_in_cluster_token(configuration)
    except (ConfigException, OSError, ValueError, TypeError, KeyError) as err:
        where = kubeconfig or "in-cluster service account"
        raise KubeConfigError(f"kubeconfig {where}: {err}") from None
    if master:
        configuration.host = master.rstrip("/")
    return api_config(configuration, where=kubeconfig or "in-cluster service account")


def api_config(configuration: Configuration, *, where: str = "kubeconfig") -> ApiConfig:
    """Plain values of a package ``Configuration``, its credentials kept current."""
    host = str(configuration.host or "").rstrip("/")
    proxy = str(configuration.proxy) if configuration.proxy else None
    if proxy and _bypassed(host, str(configuration.no_proxy or "")):
        proxy = None
    if proxy and proxy.lower().startswith("socks"):
        raise KubeConfigError(
            f"kubeconfig {where}: proxy-url {proxy.split('@')[-1]!r} is a SOCKS proxy, "
            "which this CCM does not support: use an HTTP(S) proxy, or none"
        )
    if configuration.assert_hostname is not None:
        raise KubeConfigError(
            f"kubeconfig {where}: assert_hostname is not supported: name the server to "
            "verify with tls-server-name"
        )
    return ApiConfig(
        host=host,
        verify=bool(configuration.verify_ssl),
        ca_file=configuration.ssl_ca_cert or None,
        ca_data=configuration.ca_cert_data or None,
        cert_file=configuration.cert_file or None,
        key_file=configuration.key_file or None,
        server_name=configuration.tls_server_name or None,
        proxy=proxy,
        proxy_headers=configuration.proxy_headers or None,
        credentials=Credentials(configuration),
    )


def _bypassed(host: str, no_proxy: str) -> bool:
    """``no_proxy`` names this host (the package's own rule)."""
    from kubernetes.client.rest import should_bypass_proxies

    return bool(should_bypass_proxies(host, no_proxy))
