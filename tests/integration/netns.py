"""A network namespace of the test's own: a server bound to a wildcard address
inside it reaches nothing but the namespace's loopback (IPv4 and IPv6), never the
machine's other addresses. Needs root and iproute2; removed at the end."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager


def usable() -> str:
    """Why a namespace cannot be made here ("" when it can)."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None:
        return "iproute2's ip is not installed"
    return ""


@contextmanager
def namespace() -> Iterator[str]:
    """A fresh namespace with its loopback up; yields its name."""
    name = f"xoccm-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True)
    try:
        subprocess.run(
            ["ip", "-n", name, "link", "set", "lo", "up"], check=True, capture_output=True
        )
        yield name
    finally:
        subprocess.run(["ip", "netns", "delete", name], check=False, capture_output=True)


def run_in(name: str, argv: Sequence[str], *, timeout: float) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` inside the namespace; its output as text."""
    return subprocess.run(
        ["ip", "netns", "exec", name, *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
