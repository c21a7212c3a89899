"""``--version``, as component-base's verflag prints it."""

from __future__ import annotations

import json
import platform
from importlib import metadata

from entrypoints.console import PROG


def version() -> str:
    try:
        return "v" + metadata.version(PROG)
    except metadata.PackageNotFoundError:  # running from a source tree
        return "v0.0.0-source"


def print_version(mode: str) -> int:
    """``--version`` (``true``): one line; ``raw``: the details as JSON; any other
    value is the version to report (verflag's way of overriding it)."""
    if mode == "raw":
        print(
            json.dumps(
                {
                    "gitVersion": version(),
                    "pythonVersion": platform.python_version(),
                    "platform": f"{platform.system().lower()}/{platform.machine()}",
                }
            )
        )
    elif mode == "true":
        print(f"{PROG} {version()}")
    else:
        print(f"{PROG} {mode}")
    return 0
