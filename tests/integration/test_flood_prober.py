"""The flood test's kubelet-like prober counts every probe it sent as answered or
failed, even when it is stopped while a probe is in flight (a probe cut short by the
test's own stop is neither: the secure-port flood test read one as 110/111 answered
with no failure)."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

from tests.integration.flood import Prober
from tests.xo.pki import make_pki


async def slow_healthz(tmp_path: Path, delay: float) -> asyncio.Server:
    context = make_pki(tmp_path).server_context()

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            await asyncio.sleep(delay)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
            await writer.drain()
        except (OSError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        finally:
            writer.close()

    return await asyncio.start_server(answer, "127.0.0.1", 0, ssl=context)


async def test_a_probe_in_flight_when_stopped_is_counted_not_lost(tmp_path: Path) -> None:
    server = await slow_healthz(tmp_path, delay=0.3)
    try:
        port = server.sockets[0].getsockname()[1]
        prober = Prober("127.0.0.1", port, every=0.05, timeout=1.0)
        prober.start()
        await asyncio.sleep(0.5)  # the second probe is waiting on its answer
        await prober.stop()
        assert prober.sent >= 2
        assert prober.answered + len(prober.failures) == prober.sent, prober
        assert prober.failures == []
    finally:
        server.close()
        await server.wait_closed()
