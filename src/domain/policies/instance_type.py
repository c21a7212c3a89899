"""The instance type label: ``<vCPUs>vCPU-<GiB>GB``."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

GIB = 1024**3


def instance_type(*, cpus: int, memory_bytes: int) -> str:
    """``2vCPU-4GB`` for 2 vCPUs and 4 GiB; memory is rounded half up to whole GiB.

    Rounding (not truncating) keeps a 3.9 GiB VM from being labelled ``3GB``.
    """
    gib = (Decimal(memory_bytes) / GIB).quantize(Decimal(1), rounding=ROUND_HALF_UP)
    return f"{cpus}vCPU-{gib}GB"
