"""What every sub-command shares on the console: the program name and its error line."""

from __future__ import annotations

import sys

from adapters.logging_setup import mask_secrets

PROG = "xenorchestra-cloud-controller-manager"


def fail(message: str) -> int:
    """Print ``PROG: error: message`` to stderr, as argparse does; return exit code 1.

    Masked like every log record: the message may quote an error from anywhere."""
    print(f"{PROG}: error: {mask_secrets(message)}", file=sys.stderr)
    return 1
