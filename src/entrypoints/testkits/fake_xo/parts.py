"""What a fake XO is made of, handed to its route classes as one value."""

from __future__ import annotations

from dataclasses import dataclass

from entrypoints.testkits.fake_xo.counter import RequestCounter
from entrypoints.testkits.fake_xo.events import EventHub
from entrypoints.testkits.fake_xo.exchanges import ExchangeLog
from entrypoints.testkits.fake_xo.faults import AuthDB, FaultInjector
from entrypoints.testkits.fake_xo.state import FakeXOState


@dataclass(frozen=True, slots=True)
class Parts:
    """The world (``state``), its event streams (``hub``), the injected failures
    (``faults``), who may log in (``auth``), what was asked (``requests``) and,
    when recording, every request with its answer (``exchanges``)."""

    state: FakeXOState
    hub: EventHub
    faults: FaultInjector
    auth: AuthDB
    requests: RequestCounter
    exchanges: ExchangeLog
