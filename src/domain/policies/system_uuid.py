"""SMBIOS system uuids as guests report them."""

from __future__ import annotations


def swap_little_endian(uuid: str) -> str:
    """Byte-swap the first three fields of a uuid.

    UEFI guests report SMBIOS 2.8 uuids whose first three fields are
    little-endian: ``aabbccdd-eeff-gghh-...`` is really ``ddccbbaa-ffee-hhgg-...``.
    The swap is its own inverse. Input is lower-cased; a value without the
    uuid's 8-4-4 prefix is returned unchanged.
    """
    parts = uuid.lower().split("-")
    if len(parts) != 5 or [len(p) for p in parts[:3]] != [8, 4, 4]:
        return uuid.lower()
    a, b, c = parts[0], parts[1], parts[2]
    return "-".join(
        (a[6:8] + a[4:6] + a[2:4] + a[0:2], b[2:4] + b[0:2], c[2:4] + c[0:2], parts[3], parts[4])
    )
