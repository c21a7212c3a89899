"""A suite stopped by SIGTERM tears down what it started.

CI's timeout, ``timeout(1)`` and ``kill`` send SIGTERM, which ends pytest at once:
no fixture finalizer runs, and the control planes, kubelets, containerd and fake
XOs the fixtures started outlive it (with their cgroups, veths and temp dirs).
Turned into the KeyboardInterrupt of a Ctrl-C, it makes pytest stop the run and
finalize the fixtures in flight, as it does for Ctrl-C.
"""

from __future__ import annotations

import signal
from types import FrameType

import pytest


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def pytest_configure(config: pytest.Config) -> None:
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _interrupt)
