"""``scripts/build-image``: build the image from the Dockerfile, print the archive path."""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
import tomllib
from pathlib import Path

from .build import BuildError, build, build_pause
from .debian import DebianError

REPO = Path(__file__).resolve().parents[2]
NAME = "xenorchestra-cloud-controller-manager"


def default_reference(context: Path) -> str:
    """``<name>:<project version>``: the tag the manifests and the chart's appVersion use."""
    pyproject = tomllib.loads((context / "pyproject.toml").read_text(encoding="utf-8"))
    return f"{NAME}:{pyproject['project']['version']}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="scripts/build-image",
        description="Build the Dockerfile's image without a container engine (mmdebstrap, "
        "chroot, pip from a wheelhouse) into an OCI archive; print its path. Needs root.",
    )
    parser.add_argument(
        "--context", type=Path, default=REPO, help="build context (default: the repo)"
    )
    parser.add_argument("--file", type=Path, help="Dockerfile (default: <context>/Dockerfile)")
    parser.add_argument("--tag", help=f"image name:tag (default: {NAME}:<project version>)")
    parser.add_argument("--output", type=Path, help="also copy the archive here")
    parser.add_argument(
        "--pause",
        type=Path,
        metavar="BINARY",
        help="instead: an image of this static pause binary (--tag required)",
    )
    parser.add_argument(
        "--cache",
        type=Path,
        default=Path(os.environ.get("XOCCM_CACHE", Path.home() / ".cache" / "xenorchestra-ccm"))
        / "image",
        help="where bases, wheels and images are kept (default ~/.cache/xenorchestra-ccm/image)",
    )
    args = parser.parse_args(argv)
    try:
        if args.pause:
            if not args.tag:
                parser.error("--pause needs --tag")
            archive = build_pause(args.pause, reference=args.tag, cache=args.cache)
        else:
            context = args.context.resolve()
            reference = args.tag or default_reference(context)
            if not re.fullmatch(r"[a-z0-9][a-z0-9._/-]*:[A-Za-z0-9_.-]+", reference):
                parser.error(f"--tag {reference!r}: expected name:tag")
            archive = build(
                context=context,
                dockerfile=args.file or context / "Dockerfile",
                reference=reference,
                cache=args.cache,
            )
    except (BuildError, DebianError, OSError) as err:
        print(f"build-image: error: {err}", file=sys.stderr)
        return 1
    if args.output:
        shutil.copyfile(archive, args.output)
        archive = args.output
    print(archive)
    return 0


if __name__ == "__main__":
    sys.exit(main())
