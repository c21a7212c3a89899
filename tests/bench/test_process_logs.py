"""The test kits' child processes leave nothing behind: no log file for a process
that never ran, and no descriptor of this process held on a log once it is gone.

Before this, each wrapper took its log path from ``mkstemp`` in its constructor
and dropped the descriptor: every wrapper built only to read its command line left
an empty ``xoccm-log-*`` file in the temp dir, and every one held a descriptor of
the suite's process until the interpreter exited.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.ccm_process import CCMProcess
from tests.integration.e2e_support import CCMDaemon, FakeXOProcess
from tools.bench.builds import THIS_TREE, BenchCCM

PREFIXES = ("xoccm-log-", "xoccm-e2e-")


def _log_files() -> set[str]:
    return {n for n in os.listdir(tempfile.gettempdir()) if n.startswith(PREFIXES)}


def _descriptors_on(path: Path) -> list[str]:
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue  # closed meanwhile (the listing's own descriptor)
        if target.removesuffix(" (deleted)") == str(path):
            found.append(fd)
    return found


@pytest.fixture
def temp_dir_watched() -> Iterator[None]:
    before = _log_files()
    yield
    assert _log_files() - before == set(), "log files left in the temp dir"


@pytest.mark.usefixtures("temp_dir_watched")
def test_a_process_wrapper_never_started_makes_no_log_file() -> None:
    made: list[CCMProcess | CCMDaemon | FakeXOProcess] = [
        CCMProcess(kubeconfig="k", cloud_config="c"),
        BenchCCM(build=THIS_TREE, kubeconfig="k", cloud_config="c"),
        CCMDaemon(kubeconfig=Path("k"), cloud_config=Path("c")),
        FakeXOProcess(),
    ]
    assert all(p.log == "" for p in made)


@pytest.mark.usefixtures("temp_dir_watched")
async def test_a_started_ccm_process_holds_no_descriptor_on_its_log() -> None:
    ccm = CCMProcess(kubeconfig="k", cloud_config="c")
    ccm.argv = [sys.executable, "-c", "print('hello from the child')"]
    await ccm.start()
    assert await ccm.wait() == 0
    path = ccm.log_path
    assert "hello from the child" in ccm.log
    assert _descriptors_on(path) == []
    await ccm.start()  # a restart writes the same file again
    assert await ccm.wait() == 0
    assert ccm.log_path == path and ccm.log.count("hello") == 1
    ccm.cleanup()
    assert not path.exists()


@pytest.mark.usefixtures("temp_dir_watched")
def test_a_started_daemon_holds_no_descriptor_on_its_log() -> None:
    daemon = CCMDaemon(kubeconfig=Path("k"), cloud_config=Path("c"))
    daemon.argv = [sys.executable, "-c", "print('hello from the daemon')"]
    daemon.start()
    assert daemon.proc is not None and daemon.proc.wait(10) == 0
    path = daemon.log_path
    assert "hello from the daemon" in daemon.log
    assert _descriptors_on(path) == []
    daemon.stop()
    assert not path.exists()
