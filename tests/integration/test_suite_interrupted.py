"""A suite stopped by SIGTERM (CI's timeout) runs its fixtures' teardown
(``tests/interrupt.py``): what they started does not outlive it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SLOW_TEST = """
import time
from pathlib import Path

import pytest

MARKS = Path({marks!r})


@pytest.fixture
def started():
    (MARKS / "started").touch()
    yield
    (MARKS / "torn-down").touch()


def test_runs_until_stopped(started):
    time.sleep(60)
"""


def test_sigterm_runs_the_teardown_of_the_fixtures_in_flight(tmp_path: Path) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()
    test_file = tmp_path / "test_slow.py"
    test_file.write_text(SLOW_TEST.format(marks=str(marks)))
    child = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "tests.interrupt",
            "--rootdir",
            str(tmp_path),
            str(test_file),
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while not (marks / "started").exists():
            assert child.poll() is None and time.monotonic() < deadline, "the test never started"
            time.sleep(0.05)
        child.send_signal(signal.SIGTERM)
        out, _ = child.communicate(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert (marks / "torn-down").exists(), out.decode(errors="replace")
    assert child.returncode != 0
