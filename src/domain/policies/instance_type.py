"""The instance type label: ``<vCPUs>vCPU-<GiB>GB``, exactly as the Go CCM writes it."""

from __future__ import annotations

GIB = 1024**3


def instance_type(*, cpus: int, memory_bytes: int) -> str:
    """``2vCPU-4GB`` for 2 vCPUs and 4 GiB.

    The Go CCM formats ``%.0fvCPU-%.0fGB`` of ``float64(CPUs.max)`` and
    ``float64(memory.size) / 2^30``: Go's ``%.0f`` rounds the exact binary value
    half to even (2.5 GiB is ``2GB``, 3.5 GiB is ``4GB``, 3.9 GiB is ``4GB``).
    Python's ``format`` does the same on the same float64, so a node keeps the
    value the Go CCM gave it.
    """
    return f"{float(cpus):.0f}vCPU-{memory_bytes / GIB:.0f}GB"
