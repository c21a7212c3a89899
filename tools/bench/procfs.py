"""What a process costs, read from ``/proc`` (``psutil`` when it is installed), and
what machine the numbers come from.

RSS is ``VmRSS`` (now) and ``VmHWM`` (the peak since the process started);
CPU is ``utime + stime`` of the process (all its threads). Both are what
``top`` and the kernel's accounting say, so they include the interpreter, the
Kubernetes client's threads and everything the process allocated.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

try:  # optional: the numbers are the same, psutil only reads them more portably
    import psutil
except ImportError:  # pragma: no cover - depends on the environment
    psutil = None

MIB = 1024 * 1024
_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True, slots=True)
class ProcSample:
    at: float  # time.monotonic()
    rss: int  # bytes
    hwm: int  # bytes, peak RSS since start
    cpu: float  # seconds, user + system


def _status_kib(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def sample(pid: int) -> ProcSample:
    """One reading of ``pid``; raises ProcessLookupError when it is gone."""
    now = time.monotonic()
    try:
        if psutil is not None:
            proc = psutil.Process(pid)
            times = proc.cpu_times()
            rss = proc.memory_info().rss
            hwm = _status_kib(pid, "VmHWM") * 1024
            return ProcSample(now, rss, hwm, times.user + times.system)
        stat = Path(f"/proc/{pid}/stat").read_text()
        # The command name may hold spaces and parentheses: split after the last ')'.
        fields = stat[stat.rindex(")") + 2 :].split()
        utime, stime = int(fields[11]), int(fields[12])
        return ProcSample(
            now,
            _status_kib(pid, "VmRSS") * 1024,
            _status_kib(pid, "VmHWM") * 1024,
            (utime + stime) / _TICKS,
        )
    except (FileNotFoundError, KeyError, IndexError, ValueError) as err:
        raise ProcessLookupError(pid) from err


@dataclass
class Sampler:
    """Samples a process every ``every`` seconds while running (``start``/``stop``)."""

    pid: int
    every: float = 1.0
    samples: list[ProcSample] = field(default_factory=list)
    _task: asyncio.Task[None] | None = None

    def start(self) -> Sampler:
        self._task = asyncio.create_task(self._run(), name=f"sampler-{self.pid}")
        return self

    async def _run(self) -> None:
        while True:
            try:
                self.samples.append(sample(self.pid))
            except ProcessLookupError:
                return
            await asyncio.sleep(self.every)

    async def stop(self) -> list[ProcSample]:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        with contextlib.suppress(ProcessLookupError):
            self.samples.append(sample(self.pid))
        return self.samples


def window_summary(samples: list[ProcSample]) -> dict[str, float]:
    """Peak and median RSS, peak-since-start, and CPU seconds over the window."""
    if len(samples) < 2:
        raise ValueError("a window needs at least two samples")
    rss = [s.rss for s in samples]
    seconds = samples[-1].at - samples[0].at
    cpu = samples[-1].cpu - samples[0].cpu
    return {
        "window_seconds": round(seconds, 1),
        "peak_rss_mib": round(max(rss) / MIB, 1),
        "median_rss_mib": round(statistics.median(rss) / MIB, 1),
        "start_rss_mib": round(rss[0] / MIB, 1),
        "end_rss_mib": round(rss[-1] / MIB, 1),
        "hwm_since_start_mib": round(samples[-1].hwm / MIB, 1),
        "cpu_seconds": round(cpu, 2),
        "cpu_percent_of_one_core": round(100 * cpu / seconds, 1) if seconds else 0.0,
    }


def machine() -> dict[str, Any]:
    """nproc, CPU model, memory, kernel and Python: printed with every result."""
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_kib = 0
    with contextlib.suppress(OSError, KeyError):
        mem_kib = _meminfo_kib("MemTotal")
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_model": model,
        "memory_gib": round(mem_kib / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
    }


def _meminfo_kib(key: str) -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def machine_line(info: dict[str, Any]) -> str:
    return (
        f"machine: {info['nproc']} CPU(s), {info['cpu_model']}, {info['memory_gib']} GiB RAM, "
        f"Linux {info['kernel']}, Python {info['python']}"
    )
