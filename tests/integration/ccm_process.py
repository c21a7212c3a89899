"""The CCM run as operators run it: the console script in a subprocess.

Used by the end-to-end scenarios, the benchmarks and the fault-injection
suite: it writes a cloud config for a fake XO, starts
``xenorchestra-cloud-controller-manager`` with short leader-election
timings on a free loopback HTTPS port, waits for ``/readyz``, and stops it with
SIGTERM (or kills it, to simulate a crash).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import BinaryIO

import httpx

from .controlplane import free_port

CONSOLE_SCRIPT = "xenorchestra-cloud-controller-manager"

#: /metrics open to anonymous scrapes, as the Go CCM's manifests open it (the
#: test CCMs run outside a cluster with no review kubeconfig: nothing else answers).
OPEN_PATHS = "--authorization-always-allow-paths=/healthz,/livez,/readyz,/metrics"

#: Fast enough for tests, still valid (retry < renew deadline < lease duration).
FAST_LEADER_FLAGS = (
    "--leader-elect-lease-duration=4s",
    "--leader-elect-renew-deadline=3s",
    "--leader-elect-retry-period=0.5s",
)


def console_script() -> str:
    """The console script next to this interpreter (the project's venv)."""
    import sys

    candidate = Path(sys.executable).parent / CONSOLE_SCRIPT
    found = str(candidate) if candidate.exists() else shutil.which(CONSOLE_SCRIPT)
    if not found:
        raise RuntimeError(f"{CONSOLE_SCRIPT} is not installed (pip install -e .)")
    return found


class ProcessLog:
    """A child process's output, in a file of the temp dir.

    The file is made when the process first starts (a wrapper built only to read
    its command line makes none), its descriptor is this object's only while the
    child is being spawned, and :meth:`remove` deletes it.
    """

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self._path: Path | None = None

    @property
    def path(self) -> Path:
        if self._path is None:
            raise RuntimeError(f"no {self.prefix}* log yet: the process was never started")
        return self._path

    def open(self) -> BinaryIO:
        """For the child's stdout, emptied; close it once the child holds its copy."""
        if self._path is None:
            handle, name = tempfile.mkstemp(prefix=self.prefix, suffix=".txt")
            self._path = Path(name)
            return os.fdopen(handle, "wb")
        return self._path.open("wb")

    def read(self) -> str:
        return "" if self._path is None else self._path.read_text(errors="replace")

    def remove(self) -> None:
        if self._path is not None:
            self._path.unlink(missing_ok=True)


def write_cloud_config(url: str, *, token: str = "fake-xo-token", extra: str = "") -> Path:
    handle, name = tempfile.mkstemp(prefix="xoccm-config-", suffix=".yaml")
    with os.fdopen(handle, "w") as out:
        out.write(f"url: {url}\ntoken: {token}\n{extra}")
    return Path(name)


def ccm_argv(
    *, kubeconfig: Path | str, cloud_config: Path | str, port: int, flags: Sequence[str] = ()
) -> list[str]:
    """The command line of a test CCM: loopback health port, debug logs, fast leader election."""
    return [
        console_script(),
        f"--cloud-config={cloud_config}",
        f"--kubeconfig={kubeconfig}",
        "--bind-address=127.0.0.1",
        f"--secure-port={port}",
        "--v=4",
        OPEN_PATHS,
        *FAST_LEADER_FLAGS,
        *flags,
    ]


class CCMProcess:
    """One CCM process; ``log`` holds everything it printed."""

    def __init__(
        self,
        *,
        kubeconfig: Path | str,
        cloud_config: Path | str,
        flags: Sequence[str] = (),
        env: dict[str, str] | None = None,
        preexec_fn: Callable[[], None] | None = None,
    ) -> None:
        self.port = free_port()
        self.preexec_fn = preexec_fn
        self.argv = ccm_argv(
            kubeconfig=kubeconfig, cloud_config=cloud_config, port=self.port, flags=flags
        )
        self.env = {**os.environ, **(env or {})}
        self._log = ProcessLog("xoccm-log-")
        self.proc: asyncio.subprocess.Process | None = None
        self.started_at = 0.0
        #: answers 200 once the process is ready
        self.ready_path = "/readyz"

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self._log.path

    @property
    def log(self) -> str:
        return self._log.read()

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def returncode(self) -> int | None:
        return None if self.proc is None else self.proc.returncode

    async def start(self) -> CCMProcess:
        self.started_at = time.monotonic()
        with self._log.open() as log:
            self.proc = await asyncio.create_subprocess_exec(
                *self.argv,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
                env=self.env,
                preexec_fn=self.preexec_fn,
            )
        return self

    async def get(self, path: str) -> httpx.Response:
        # The CCM serves a self-signed certificate (no --tls-cert-file), as Go's does.
        async with httpx.AsyncClient(timeout=2.0, verify=False) as client:
            return await client.get(self.url + path)

    async def wait_ready(self, within: float = 20.0) -> None:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if self.returncode is not None:
                raise RuntimeError(f"CCM exited with {self.returncode}:\n{self.log[-3000:]}")
            try:
                if (await self.get(self.ready_path)).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)
        raise TimeoutError(f"CCM not ready within {within}s:\n{self.log[-3000:]}")

    async def metrics(self) -> str:
        return (await self.get("/metrics")).text

    async def wait(self, within: float = 20.0) -> int:
        assert self.proc is not None
        return await asyncio.wait_for(self.proc.wait(), within)

    async def stop(self, within: float = 15.0) -> int:
        """SIGTERM, then SIGKILL if it does not stop in time."""
        if self.proc is None or self.proc.returncode is not None:
            return self.returncode or 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return await asyncio.wait_for(self.proc.wait(), within)
        except TimeoutError:
            return await self.kill()

    async def kill(self) -> int:
        """SIGKILL: a crash, the Lease is not released."""
        assert self.proc is not None
        if self.proc.returncode is None:
            self.proc.kill()
        return await self.proc.wait()

    def cleanup(self) -> None:
        self._log.remove()
