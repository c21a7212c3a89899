"""What XO's server list says about a pool's objects (``domain.policies.xo_servers``)."""

from __future__ import annotations

import pytest

from domain.model import XOServer
from domain.policies.xo_servers import lost_servers, pool_current, server_problem

from .factories import POOL_A, POOL_B

UP_A = XOServer(label="a", enabled=True, status="connected", pool_id=POOL_A)
#: a second entry for pool A's master: XO refuses it (PoolAlreadyConnected) for good
DUPLICATE_A = XOServer(
    label="a-again", enabled=True, status="disconnected", error="PoolAlreadyConnected"
)


@pytest.mark.parametrize(
    ("servers", "pool", "current"),
    [
        pytest.param([UP_A], POOL_A, True, id="connected"),
        pytest.param([UP_A], POOL_A.upper() + " ", True, id="case-and-space"),
        pytest.param([UP_A], POOL_B, False, id="another-pool"),
        pytest.param([UP_A], "", False, id="no-pool-named"),
        pytest.param([], POOL_A, False, id="none-listed-eg-no-server-read"),
        pytest.param([UP_A, DUPLICATE_A], POOL_A, True, id="duplicate-entry-ignored"),
        pytest.param(
            [XOServer("a", True, "connected", POOL_A, "EVENTS_LOST")], POOL_A, False, id="error"
        ),
        pytest.param([XOServer("a", True, "connecting", POOL_A)], POOL_A, False, id="connecting"),
        pytest.param([XOServer("a", False, "connected", POOL_A)], POOL_A, False, id="disabled"),
    ],
)
def test_a_pool_is_current_only_under_a_working_connection(
    servers: list[XOServer], pool: str, current: bool
) -> None:
    assert pool_current(servers, pool) is current


def test_lost_servers_are_the_enabled_ones_not_connected() -> None:
    off = XOServer(label="old", enabled=False, status="disconnected")
    down = XOServer(label="", enabled=True, status="connecting")
    assert lost_servers([UP_A, off, down, DUPLICATE_A]) == [
        "a server (connecting)",
        "a-again (disconnected)",
    ]


@pytest.mark.parametrize(
    ("servers", "says"),
    [
        pytest.param([], "XO lists no connected server of that pool", id="none"),
        pytest.param(
            [XOServer("a", True, "connected", POOL_A, "EVENTS_LOST")],
            "server a is connected (EVENTS_LOST)",
            id="error",
        ),
    ],
)
def test_the_problem_is_named(servers: list[XOServer], says: str) -> None:
    assert server_problem(servers, POOL_A).startswith(says)
