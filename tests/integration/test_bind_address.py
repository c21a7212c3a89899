"""``--bind-address`` as a Go component binds it (issue 30, item 3).

Go's ``net.Listen("tcp", ...)`` turns a wildcard (``0.0.0.0`` or ``::``) into one
dual-stack socket on ``[::]``, so IPv4 and IPv6 probes both reach the port, and the
component logs ``[::]:10258``. The secure port is built here as the process builds
it (the container's ``health`` Service), inside a network namespace of the test's
own so that a wildcard bind opens nothing on the machine; the probes come from the
same namespace over IPv4 and IPv6 loopback.
"""

from __future__ import annotations

import json
import sys

import pytest

from .netns import namespace, run_in, usable

SERVE_AND_PROBE = r"""
import asyncio, json, ssl, sys
from loguru import logger
from entrypoints.container import Container, provide, shutdown
from entrypoints.flags.settings import parse_command_line

async def ready():
    return True

async def probe(host):
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        async with asyncio.timeout(5):
            reader, writer = await asyncio.open_connection(host, 10258, ssl=context)
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            status = (await reader.readline()).decode().strip()
            writer.close()
            return status
    except OSError as err:
        return type(err).__name__

async def main(bind):
    lines = []
    logger.remove()
    logger.add(lambda message: lines.append(str(message).strip()), format="{message}")
    settings = parse_command_line([f"--bind-address={bind}", "--secure-port=10258"])
    container = Container(settings=settings)
    container.readiness.override(ready)
    try:
        port = await provide(container.health)
        answers = {host: await probe(host) for host in ("127.0.0.1", "::1")}
        listening = getattr(port, "listening", None)
    finally:
        await shutdown(container)
    serving = [line for line in lines if line.startswith("serving /healthz")]
    print(json.dumps({"answers": answers, "listening": listening, "serving": serving}))

asyncio.run(main(sys.argv[1]))
"""

BOTH = {"127.0.0.1": "HTTP/1.1 200 OK", "::1": "HTTP/1.1 200 OK"}
DUAL = "[::]:10258 (every IPv4 and IPv6 address)"


@pytest.mark.skipif(bool(usable()), reason=usable() or "usable")
@pytest.mark.parametrize(
    ("bind", "answers", "listening"),
    [
        pytest.param("::", BOTH, DUAL, id="ipv6-wildcard-is-dual-stack"),
        pytest.param("0.0.0.0", BOTH, DUAL, id="ipv4-wildcard-as-go-binds-it"),
        pytest.param(
            "127.0.0.1",
            {"127.0.0.1": "HTTP/1.1 200 OK", "::1": "ConnectionRefusedError"},
            "127.0.0.1:10258",
            id="ipv4-loopback-only",
        ),
        pytest.param(
            "::1",
            {"127.0.0.1": "ConnectionRefusedError", "::1": "HTTP/1.1 200 OK"},
            "[::1]:10258",
            id="ipv6-loopback-only",
        ),
    ],
)
@pytest.mark.timeout(120)
def test_bind_address_reaches_the_families_go_reaches_and_the_log_names_it(
    bind: str, answers: dict[str, str], listening: str
) -> None:
    with namespace() as name:
        done = run_in(name, [sys.executable, "-c", SERVE_AND_PROBE, bind], timeout=90)
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["answers"] == answers
    assert seen["listening"] == f"https://{listening}"
    assert seen["serving"] == [f"serving /healthz /livez /readyz /metrics on https://{listening}"]
