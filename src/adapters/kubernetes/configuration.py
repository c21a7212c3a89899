"""Where the client's configuration comes from: a kubeconfig file or the pod's service account.

Loading reads files, so it runs in a one-shot thread (:func:`run_in_thread`),
never on the event loop; :class:`ConfigSource` lets a client and its
siblings share one configuration, given or loaded on first use.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.config.config_exception import ConfigException

from adapters.kubernetes import credentials
from adapters.kubernetes.errors import KubeConfigError

T = TypeVar("T")


async def run_in_thread(fn: Callable[[], T], *, name: str) -> T:
    """Run ``fn`` in a one-shot thread and await its result.

    For rare blocking calls (config loading, shutting a pool down) where
    borrowing the loop's default executor would leave its threads around.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def deliver(ok: bool, value: Any) -> None:
        if future.done():
            return
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)

    def target() -> None:
        try:
            result: Any = fn()
            ok = True
        except BaseException as err:  # delivered to the awaiting task
            result, ok = err, False
        with contextlib.suppress(RuntimeError):  # loop already closed: nobody waits
            loop.call_soon_threadsafe(deliver, ok, result)

    thread = threading.Thread(target=target, name=name, daemon=True)
    thread.start()
    return await future


def load_kubeconfig(
    kubeconfig: str | None, context: str | None, master: str | None = None
) -> k8s.Configuration:
    """Blocking: read the kubeconfig file (or the in-cluster service account files).

    ``master`` (``--master``) overrides the server, as client-go's
    ``BuildConfigFromFlags`` does; alone, it is the server with no credentials.
    Credentials that can change (token files, exec and auth-provider plugins) are
    kept current as client-go keeps them (:mod:`credentials`).
    """
    configuration = k8s.Configuration()
    if master and not kubeconfig:
        configuration.host = master.rstrip("/")
        return configuration
    try:
        if kubeconfig:
            configuration = credentials.load_kubeconfig(kubeconfig, context)
        else:
            k8s_config.load_incluster_config(  # type: ignore[no-untyped-call]
                client_configuration=configuration
            )
            credentials.watch_in_cluster_token(configuration)
    except (ConfigException, OSError, ValueError, TypeError, KeyError) as err:
        where = kubeconfig or "in-cluster service account"
        raise KubeConfigError(f"kubeconfig {where}: {err}") from None
    if master:
        configuration.host = master.rstrip("/")
    return configuration


class ConfigSource:
    """A configuration given, or loaded once on first use (in a worker thread)."""

    def __init__(self, value: k8s.Configuration | Callable[[], k8s.Configuration]) -> None:
        self._lock = threading.Lock()
        self._value = value if isinstance(value, k8s.Configuration) else None
        self._loader = None if isinstance(value, k8s.Configuration) else value

    @property
    def loaded(self) -> k8s.Configuration | None:
        """The configuration if it was given or already loaded (never loads it)."""
        return self._value

    def get(self) -> k8s.Configuration:
        with self._lock:
            if self._value is None:
                assert self._loader is not None
                self._value = self._loader()
            return self._value


async def load_configuration(
    kubeconfig: str | None = None, *, context: str | None = None, master: str | None = None
) -> k8s.Configuration:
    """The client configuration from a kubeconfig file, or in-cluster when ``kubeconfig``
    is empty (the service account token file is then re-read as it rotates)."""
    return await run_in_thread(
        lambda: load_kubeconfig(kubeconfig, context, master), name="kube-config-load"
    )
