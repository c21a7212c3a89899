"""What every fuzz property shares: the adapter under test, and the escape check."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TypeVar

from pydantic import SecretStr

from adapters.config import CloudConfig
from adapters.xenorchestra import RetryPolicy, StreamPolicy, XOInventory
from domain.errors import CCMError

T = TypeVar("T")

#: Transient answers (429, 5xx) are retried for 0.1 s at most: an example stays fast.
QUICK_RETRY = RetryPolicy(deadline=0.1, initial_backoff=0.01, max_backoff=0.02, jitter=0.1)
QUICK_STREAM = StreamPolicy(
    ping_timeout=2.0, reconnect_initial=0.01, reconnect_max=0.05, poll_interval=0.05
)
TOKEN = "fuzz-token-5b1f"


def inventory_for(url: str) -> XOInventory:
    """The real XO adapter (HTTP client, retries, parsing) pointed at ``url``."""
    config = CloudConfig(url=url, token=SecretStr(TOKEN), clientTimeout=5.0)
    return XOInventory.from_config(config, retry=QUICK_RETRY, stream=QUICK_STREAM)


async def typed(call: Awaitable[T], allowed: type[CCMError] = CCMError) -> T | CCMError:
    """The call's result, or the adapter's error it raised, which must be one line
    naming the problem and never hold the token. Anything else escapes: the
    property fails with it."""
    try:
        return await call
    except allowed as err:
        caught = err
    message = str(caught)
    assert message.strip(), f"{type(caught).__name__} without a message"
    assert "\n" not in message, f"a multi-line error: {message!r}"
    assert TOKEN not in message
    return caught
