"""An OCI image archive written by hand: the layout that ``ctr images import``,
``docker load`` and ``podman load`` take (``oci-layout``, ``index.json``,
``blobs/sha256/...``), in a plain tar. Layers are gzip-compressed tars; the config
carries the Dockerfile's settings. See the OCI image-spec (image-layout, manifest,
config).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import platform
import tarfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

MANIFEST = "application/vnd.oci.image.manifest.v1+json"
CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
CHUNK = 1 << 20


def architecture() -> str:
    """This machine's architecture in OCI's words (the image is built natively)."""
    machine = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


def normalized_name(reference: str) -> str:
    """``name:tag`` as containerd and Docker store it (``docker.io/library/...``)."""
    first = reference.split("/", 1)[0]
    if "/" not in reference:
        return f"docker.io/library/{reference}"
    if "." in first or ":" in first or first == "localhost":
        return reference
    return f"docker.io/{reference}"


@dataclass(frozen=True)
class Layer:
    """A compressed layer blob on disk, with its digest and its diff_id."""

    blob: Path
    digest: str
    diff_id: str
    size: int
    created_by: str

    def to_json(self) -> dict[str, Any]:
        return {**{k: str(v) for k, v in vars(self).items()}, "size": self.size}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Layer:
        return cls(
            blob=Path(data["blob"]),
            digest=data["digest"],
            diff_id=data["diff_id"],
            size=int(data["size"]),
            created_by=data["created_by"],
        )


class _Hashing(io.RawIOBase):
    """Writes to ``target`` while hashing what passes (the uncompressed tar)."""

    def __init__(self, target: BinaryIO) -> None:
        self.target = target
        self.sha = hashlib.sha256()

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        view = memoryview(data)
        self.sha.update(view)
        self.target.write(view)
        return len(view)


def _compress(blob: Path, fill: Any, created_by: str) -> Layer:
    """Gzip what ``fill(stream)`` writes into ``blob``; digests of both sides."""
    tmp = blob.with_suffix(".partial")
    with tmp.open("wb") as raw:
        with gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=6, mtime=0) as gz:
            plain = _Hashing(gz)  # type: ignore[arg-type]
            fill(plain)
        diff_id = "sha256:" + plain.sha.hexdigest()
    sha = hashlib.sha256()
    with tmp.open("rb") as done:
        while chunk := done.read(CHUNK):
            sha.update(chunk)
    tmp.replace(blob)
    return Layer(blob, "sha256:" + sha.hexdigest(), diff_id, blob.stat().st_size, created_by)


def layer_from_tar(tar: Path, blob: Path, *, created_by: str) -> Layer:
    """A root filesystem tar (mmdebstrap's) as one compressed layer."""

    def fill(out: _Hashing) -> None:
        with tar.open("rb") as src:
            while chunk := src.read(CHUNK):
                out.write(chunk)

    return _compress(blob, fill, created_by)


def layer_from_tree(root: Path, paths: Sequence[str], blob: Path, *, created_by: str) -> Layer:
    """The files under ``root/<path>`` for each absolute ``path``, at that path, with
    owners and modes as they are (a COPY --from of a directory)."""

    def fill(out: _Hashing) -> None:
        with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:  # type: ignore[call-overload]
            for path in paths:
                rel = path.strip("/")
                parents = Path(rel).parents
                for parent in reversed([p for p in parents if str(p) != "."]):
                    tar.add(root / parent, arcname=str(parent), recursive=False)
                tar.add(root / rel, arcname=rel, recursive=True)

    return _compress(blob, fill, created_by)


def image_config(
    *,
    layers: Sequence[Layer],
    env: Mapping[str, str],
    entrypoint: Sequence[str] | None,
    cmd: Sequence[str] | None = None,
    user: str = "",
    workdir: str = "",
    exposed: Iterable[str] = (),
    labels: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    config: dict[str, Any] = {"Env": [f"{k}={v}" for k, v in env.items()]}
    if entrypoint is not None:
        config["Entrypoint"] = list(entrypoint)
    if cmd is not None:
        config["Cmd"] = list(cmd)
    if user:
        config["User"] = user
    if workdir:
        config["WorkingDir"] = workdir
    ports = {p if "/" in p else f"{p}/tcp": {} for p in exposed}
    if ports:
        config["ExposedPorts"] = ports
    if labels:
        config["Labels"] = dict(labels)
    return {
        "architecture": architecture(),
        "os": "linux",
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": [layer.diff_id for layer in layers]},
        "history": [{"created_by": layer.created_by} for layer in layers],
    }


def _canonical(data: Mapping[str, Any]) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":")).encode()


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


def write_archive(
    out: Path, *, reference: str, layers: Sequence[Layer], config: Mapping[str, Any]
) -> str:
    """Write the OCI archive of one image named ``reference``; returns the manifest digest."""
    config_bytes = _canonical(config)
    config_digest = "sha256:" + hashlib.sha256(config_bytes).hexdigest()
    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "config": {"mediaType": CONFIG, "digest": config_digest, "size": len(config_bytes)},
        "layers": [
            {"mediaType": LAYER, "digest": layer.digest, "size": layer.size} for layer in layers
        ],
    }
    manifest_bytes = _canonical(manifest)
    manifest_digest = "sha256:" + hashlib.sha256(manifest_bytes).hexdigest()
    tag = reference.rpartition(":")[2]
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {
                "mediaType": MANIFEST,
                "digest": manifest_digest,
                "size": len(manifest_bytes),
                "platform": {"architecture": config["architecture"], "os": config["os"]},
                "annotations": {
                    "io.containerd.image.name": normalized_name(reference),
                    "org.opencontainers.image.ref.name": tag,
                },
            }
        ],
    }
    tmp = out.with_name(out.name + ".partial")
    with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
        for directory in ("blobs", "blobs/sha256"):
            info = tarfile.TarInfo(directory)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        _add_bytes(tar, "oci-layout", _canonical({"imageLayoutVersion": "1.0.0"}))
        _add_bytes(tar, "index.json", _canonical(index))
        _add_bytes(tar, f"blobs/sha256/{manifest_digest[7:]}", manifest_bytes)
        _add_bytes(tar, f"blobs/sha256/{config_digest[7:]}", config_bytes)
        for layer in layers:
            tar.add(layer.blob, arcname=f"blobs/sha256/{layer.digest[7:]}")
    tmp.replace(out)
    return manifest_digest
