"""A directory updated the way the kubelet updates a mounted Secret.

The kubelet's ``AtomicWriter`` writes every key into a new hidden directory
(``..2026_01_01_00_00_00.123``), points ``..data`` at it by renaming a new symlink
over the old one (one atomic step), and keeps a top-level symlink per key
(``token -> ..data/token``); the old directory is then removed. A reader holding
the path ``<dir>/token`` therefore sees the old file or the new one, never a mix,
and the file behind the path is a new inode: what the CCM's rotation must follow.
"""

from __future__ import annotations

import itertools
import os
import shutil
from collections.abc import Mapping
from pathlib import Path

_serial = itertools.count()


class SecretVolume:
    def __init__(self, directory: Path, data: Mapping[str, str]) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.update(data)

    def path(self, key: str) -> Path:
        return self.directory / key

    def update(self, data: Mapping[str, str]) -> None:
        """Replace the whole content at once, as a Secret update does."""
        target = f"..{os.getpid()}_{next(_serial):06d}"
        new = self.directory / target
        new.mkdir()
        for key, value in data.items():
            (new / key).write_text(value, encoding="utf-8")
            (new / key).chmod(0o400)
        link = self.directory / "..data"
        old = os.readlink(link) if link.is_symlink() else None
        staging = self.directory / "..data_tmp"
        staging.unlink(missing_ok=True)
        staging.symlink_to(target)
        os.replace(staging, link)  # the one atomic step
        for key in data:
            entry = self.directory / key
            if not entry.is_symlink():
                entry.symlink_to(Path("..data") / key)
        if old is not None:
            shutil.rmtree(self.directory / old)
