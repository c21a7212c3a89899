"""Taking an OCI image archive apart, and running a command in its root filesystem.

Reads what ``ctr images import`` reads (index.json, the manifest, the config, the
layers in order) and unpacks the layers into a directory; ``run_in`` runs a command
there as the image's user, in a private mount namespace (/dev and /proc mounted,
the root filesystem read-only, as the manifests run it).
"""

from __future__ import annotations

import json
import subprocess
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class ImageArchive:
    index: dict[str, Any]
    manifest: dict[str, Any]
    config: dict[str, Any]

    @property
    def name(self) -> str:
        return str(self.index["manifests"][0]["annotations"]["io.containerd.image.name"])


def _blob(tar: tarfile.TarFile, digest: str) -> bytes:
    member = tar.extractfile(f"blobs/sha256/{digest.removeprefix('sha256:')}")
    assert member is not None, digest
    return member.read()


def read(archive: Path) -> ImageArchive:
    with tarfile.open(archive) as tar:
        index_file = tar.extractfile("index.json")
        assert index_file is not None
        index = json.loads(index_file.read())
        manifest = json.loads(_blob(tar, index["manifests"][0]["digest"]))
        config = json.loads(_blob(tar, manifest["config"]["digest"]))
    return ImageArchive(index, manifest, config)


def unpack(archive: Path, target: Path) -> ImageArchive:
    """The image's root filesystem in ``target`` (owners kept: run as root)."""
    image = read(archive)
    with tarfile.open(archive) as outer:
        for layer in image.manifest["layers"]:
            name = f"blobs/sha256/{layer['digest'].removeprefix('sha256:')}"
            member = outer.extractfile(name)
            assert member is not None, name
            with tarfile.open(fileobj=member, mode="r|gz") as inner:
                inner.extractall(target, numeric_owner=True, filter="fully_trusted")
    return image


def run_in(
    root: Path,
    image: ImageArchive,
    argv: Sequence[str],
    *,
    entrypoint: Sequence[str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """``argv`` after the image's entrypoint (or ``entrypoint``), as its user, with
    its environment."""
    config = image.config["config"]
    user = config.get("User", "0:0")
    variables = list(config.get("Env", []))
    command = [*(config.get("Entrypoint", []) if entrypoint is None else entrypoint), *argv]
    script = (
        'set -e; r="$1"; shift; mkdir -p "$r/dev" "$r/proc"; '
        'mount -n --bind "$r" "$r"; mount -n -o remount,bind,ro "$r"; '
        'mount -n --rbind /dev "$r/dev"; mount -n -t proc proc "$r/proc"; '
        'exec chroot --userspec="$USERSPEC" "$r" /usr/bin/env -i "$@"'
    )
    return subprocess.run(
        [
            *("unshare", "--mount", "--propagation", "private", "--fork", "--"),
            *("sh", "-c", script, "sh", str(root), *variables, *command),
        ],
        env={"USERSPEC": user, "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
