"""What every sub-command shares on the console: the program name and its error line."""

from __future__ import annotations

import sys

PROG = "xenorchestra-cloud-controller-manager"


def fail(message: str) -> int:
    """Print ``PROG: error: message`` to stderr, as argparse does; return exit code 1."""
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return 1
