"""No event frame, however broken, ends XO's change stream or the change router.

The stream is the adapter's own (``XOInventory.changes()`` over a real socket:
httpx, httpx-sse, the frame handling); each change goes to the container's
change router over in-memory Nodes. After the fuzzed frames the server sends a
good ``add`` frame: it must arrive, on the same connection or after a
reconnect, so one bad frame costs at most that frame.
"""

from __future__ import annotations

import asyncio
from contextlib import aclosing

from hypothesis import example, given
from hypothesis import strategies as st
from pydantic import SecretStr

from adapters.config import CloudConfig
from application.change_router import ChangeRouter
from domain.model import ChangeKind, VMChange
from entrypoints.container import provide
from entrypoints.flags.settings import Settings
from entrypoints.in_memory import in_memory_container
from tests.fuzz.canned import SENTINEL_VM, Canned, CannedXO
from tests.fuzz.strategies import sse_frames
from tests.fuzz.support import inventory_for

DEEP = b"[" * 100_000 + b"]" * 100_000
VM = b'{"$subscription": "VM", "id": "a1", "power_state": "Running", "$pool": "p"'


@given(st.lists(sse_frames(), min_size=1, max_size=5))
@example([b"event: add\ndata: " + DEEP + b"\n\n"])
@example([b"event: update\ndata: " + VM + b', "CPUs": {"max": 1e400}}\n\n'])
@example([b"event: update\ndata: " + VM + b', "memory": {"size": NaN}}\n\n'])
@example([b"event: add\ndata: \xc3\x28\n\n", b"event: remove\r\ndata: {}\r\r"])
async def test_no_frame_ends_the_change_stream_or_the_router(frames: list[bytes]) -> None:
    routes = {"subscribe": Canned(201, body=b"{}")}
    async with CannedXO(routes=routes, frames=frames) as xo, inventory_for(xo.url) as inventory:
        container = in_memory_container(
            Settings(leader_elect=False),
            cloud_config=CloudConfig(url=xo.url, token=SecretStr("fuzz")),
        )
        container.inventory.override(inventory)
        router: ChangeRouter = await provide(container.change_router)
        kinds = []
        async with asyncio.timeout(15), aclosing(inventory.changes()) as changes:
            async for change in changes:
                assert isinstance(change, VMChange)
                kinds.append(change.kind)
                await router.handle(change)
                if change.vm is not None and change.vm.id == SENTINEL_VM:
                    break
    assert kinds[0] is ChangeKind.RESYNC
