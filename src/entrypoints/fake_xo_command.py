"""``fake-xo``: the fake Xen Orchestra server on its own, for demos and benchmarks."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence

from adapters.logging_setup import configure_logging
from adapters.testing.fake_xo import add_arguments, serve


def main_fake_xo(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="xenorchestra-cloud-controller-manager fake-xo",
        description="Serve a fake Xen Orchestra REST API (with a /_control API) until stopped.",
    )
    add_arguments(parser)
    args = parser.parse_args(argv)
    configure_logging(verbosity=2)
    asyncio.run(serve(args))
    return 0
