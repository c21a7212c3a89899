"""The ``fake-xo`` sub-command: a fake XO for demos, manual tests and benchmarks.

``xenorchestra-cloud-controller-manager fake-xo --listen 127.0.0.1:8080``
serves until SIGTERM/SIGINT and prints its URL first. With ``--state FILE``
the world is loaded from FILE when it exists and saved back on exit. The
console script only opens the door (:func:`entrypoints.cli.main`); the whole
sub-command, flags included, is here, beside the server it runs.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from adapters.logging_setup import configure_logging
from entrypoints.testkits.fake_xo.server import FakeXOServer
from entrypoints.testkits.fake_xo.state import FakeXOState


def _listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit():
        raise argparse.ArgumentTypeError(f"--listen {value!r}: expected HOST:PORT")
    return host.strip("[]") or "127.0.0.1", int(port)


def main(argv: Sequence[str]) -> int:
    """Parse the flags, then serve until stopped; 0 after a clean stop."""
    args = parser().parse_args(argv)
    configure_logging(verbosity=2)
    return asyncio.run(serve(args))


def parser() -> argparse.ArgumentParser:
    """The sub-command's flags."""
    parser = argparse.ArgumentParser(
        prog="xenorchestra-cloud-controller-manager fake-xo",
        description="Serve a fake Xen Orchestra REST API (with a /_control API) until stopped.",
    )
    parser.add_argument(
        "--listen",
        type=_listen,
        default=("127.0.0.1", 8080),
        metavar="HOST:PORT",
        help="address to serve on (default 127.0.0.1:8080; port 0 picks a free one)",
    )
    parser.add_argument(
        "--state",
        type=Path,
        metavar="FILE",
        help="load the world from FILE if it exists, save it there on exit",
    )
    parser.add_argument(
        "--token",
        default="fake-xo-token",
        help="accepted authenticationToken (default %(default)s)",
    )
    parser.add_argument(
        "--user",
        action="append",
        default=[],
        metavar="NAME:PASSWORD",
        help="accept HTTP Basic for this admin user (repeatable)",
    )
    parser.add_argument(
        "--empty", action="store_true", help="start with no pool/host/VM (default: the samples)"
    )
    parser.add_argument("--vms", type=int, default=0, help="add N generated running VMs")
    parser.add_argument(
        "--ping-interval", type=float, default=30.0, help="event ping period in seconds"
    )
    parser.add_argument("--tls-cert", type=Path, help="serve HTTPS with this PEM certificate")
    parser.add_argument("--tls-key", type=Path, help="the certificate's PEM private key")
    return parser


def build_server(args: argparse.Namespace) -> FakeXOServer:
    host, port = args.listen
    state_file: Path | None = args.state
    if state_file is not None and state_file.exists():
        state = FakeXOState.load(state_file)
    elif args.empty:
        state = FakeXOState()
    else:
        state = FakeXOState.from_samples()
    if args.vms:
        state.populate(count=args.vms)
    users = {}
    for entry in args.user:
        name, sep, password = entry.partition(":")
        if not sep:
            raise SystemExit(f"--user {name!r}: expected NAME:PASSWORD")
        users[name] = password
    ssl_context = None
    if args.tls_cert:
        import ssl

        ssl_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ssl_context.load_cert_chain(args.tls_cert, args.tls_key)
    return FakeXOServer(
        host=host,
        port=port,
        token=args.token,
        users=users,
        state=state,
        ping_interval=args.ping_interval,
        ssl_context=ssl_context,
        state_file=state_file,
    )


async def serve(args: argparse.Namespace) -> int:
    """Run until SIGTERM or SIGINT; print the URL once listening."""
    server = build_server(args)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await server.start()
        print(f"fake XO listening on {server.url}", flush=True)
        print(f"  token: {args.token}  control API: {server.url}/_control", file=sys.stderr)
        await stop.wait()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        await server.stop()
    return 0
