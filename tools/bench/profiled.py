"""The CCM under cProfile, every thread included: ``python -m tools.bench.profiled
OUT.prof [CCM flags...]`` (what ``scripts/bench --profile`` starts instead of the
console script).

cProfile only sees the thread that enables it, and the CCM spends part of its
time in threads (the Kubernetes client's pool decodes JSON, each watch reads in
one), so every thread gets a profiler of its own (``Thread.run`` is wrapped
before the CCM is imported) and their statistics are merged into ``OUT.prof``
when the CCM exits (SIGTERM stops it cleanly). Each profiler counts its
thread's CPU time (``time.thread_time``), not wall time: a thread blocked on a
socket or a queue costs nothing, so the top functions are where the CPU goes.
Read it with :func:`top`.
"""

from __future__ import annotations

import cProfile
import io
import pstats
import sys
import threading
import time
from pathlib import Path

_profiles: list[cProfile.Profile] = []
_lock = threading.Lock()


def _profile_threads() -> None:
    original = threading.Thread.run

    def run(self: threading.Thread) -> None:
        profile = cProfile.Profile(time.thread_time)
        with _lock:
            _profiles.append(profile)
        profile.enable()
        try:
            original(self)
        finally:
            profile.disable()

    threading.Thread.run = run  # type: ignore[method-assign]


def _dump(main: cProfile.Profile, out: Path) -> None:
    stats = pstats.Stats(main)
    with _lock:
        others = list(_profiles)
    for profile in others:
        try:
            stats.add(profile)
        except (TypeError, ValueError):  # a thread that never ran any code
            continue
    stats.dump_stats(str(out))


def top(path: Path | str, *, limit: int = 25, sort: str = "tottime") -> str:
    """The ``limit`` functions that cost most (``tottime``: in themselves;
    ``cumulative``: with what they called), as pstats prints them."""
    buffer = io.StringIO()
    stats = pstats.Stats(str(path), stream=buffer)
    stats.strip_dirs().sort_stats(sort).print_stats(limit)
    text = buffer.getvalue()
    return text[text.find("   ncalls") :] if "   ncalls" in text else text


def main(argv: list[str]) -> int:
    out, flags = Path(argv[0]), argv[1:]
    _profile_threads()
    from entrypoints.cli import main as ccm_main

    profile = cProfile.Profile(time.thread_time)
    profile.enable()
    code = 1
    try:
        code = ccm_main(flags)
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else 1
    finally:
        profile.disable()
        _dump(profile, out)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
