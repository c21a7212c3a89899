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

    def swap(field: str) -> str:
        return "".join(reversed([field[i : i + 2] for i in range(0, len(field), 2)]))

    return "-".join([swap(parts[0]), swap(parts[1]), swap(parts[2]), parts[3], parts[4]])
