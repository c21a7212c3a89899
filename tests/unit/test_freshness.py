"""The freshness rule (``domain.freshness``): which XO answers a write may come from."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from adapters.memory import FakeClock
from domain.freshness import HORIZON, Freshness, Observation

from .factories import VM_1, VM_2

Step = Callable[[Freshness, dict[str, Observation]], None]


def asked(name: str) -> Step:
    """A request named ``name`` starts (its answer is not back yet)."""

    def step(ledger: Freshness, answers: dict[str, Observation]) -> None:
        answers[name] = Observation(start=ledger.ticket(), end=-1)

    return step


def answered(name: str) -> Step:
    def step(ledger: Freshness, answers: dict[str, Observation]) -> None:
        answers[name] = Observation(start=answers[name].start, end=ledger.ticket())

    return step


def applied(name: str, vm_id: str = VM_1) -> Step:
    def step(ledger: Freshness, answers: dict[str, Observation]) -> None:
        assert ledger.admit(vm_id, answers[name])

    return step


def event(vm_id: str = VM_1) -> Step:
    return lambda ledger, _answers: ledger.announce(vm_id)


def resync() -> Step:
    return lambda ledger, _answers: ledger.announce_all()


@pytest.mark.parametrize(
    ("steps", "candidate", "vm_id", "admitted"),
    [
        pytest.param([asked("a"), answered("a")], "a", VM_1, True, id="first-answer"),
        pytest.param(
            [asked("a"), answered("a"), applied("a"), asked("b"), answered("b")],
            "b",
            VM_1,
            True,
            id="asked-after-the-applied-one-came-back",
        ),
        pytest.param(
            [asked("old"), asked("new"), answered("new"), applied("new"), answered("old")],
            "old",
            VM_1,
            False,
            id="older-than-the-applied-one",
        ),
        pytest.param(
            [asked("a"), asked("b"), answered("a"), applied("a"), answered("b")],
            "b",
            VM_1,
            False,
            id="overlapping-the-applied-one-cannot-be-ordered",
        ),
        pytest.param(
            [asked("a"), answered("a"), applied("a")],
            "a",
            VM_1,
            True,
            id="the-applied-answer-again-shared-snapshot",
        ),
        pytest.param(
            [asked("snap"), event(), answered("snap")],
            "snap",
            VM_1,
            False,
            id="asked-before-a-change-event",
        ),
        pytest.param(
            [asked("snap"), event(VM_2), answered("snap")],
            "snap",
            VM_1,
            True,
            id="another-vms-event-does-not-matter",
        ),
        pytest.param(
            [event(), asked("get"), answered("get")],
            "get",
            VM_1,
            True,
            id="asked-after-the-event",
        ),
        pytest.param(
            [asked("snap"), resync(), answered("snap")],
            "snap",
            VM_2,
            False,
            id="asked-before-a-stream-reconnect",
        ),
        pytest.param(
            [asked("a"), answered("a"), applied("a", VM_2), asked("b"), answered("b")],
            "a",
            VM_1,
            True,
            id="applied-for-another-vm",
        ),
    ],
)
def test_which_answers_a_write_may_come_from(
    steps: list[Step], candidate: str, vm_id: str, admitted: bool
) -> None:
    ledger = Freshness()
    answers: dict[str, Observation] = {}
    for step in steps:
        step(ledger, answers)
    assert ledger.admits(vm_id, answers[candidate]) is admitted


def test_refused_answer_is_not_applied() -> None:
    ledger = Freshness()
    old = Observation(start=ledger.ticket(), end=ledger.ticket())
    ledger.announce(VM_1)
    assert not ledger.admit(VM_1, old)
    new = Observation(start=ledger.ticket(), end=ledger.ticket())
    assert ledger.admit(VM_1, new)


def test_ids_are_compared_without_case() -> None:
    ledger = Freshness()
    old = Observation(start=ledger.ticket(), end=ledger.ticket())
    ledger.announce(VM_1.upper())
    assert not ledger.admits(VM_1, old)


async def test_observe_brackets_the_read() -> None:
    ledger = Freshness()
    before = ledger.ticket()

    async def read() -> str:
        ledger.announce(VM_2)  # something happens while the request is out
        return "answer"

    answer, seen = await ledger.observe(read)
    after = ledger.ticket()
    assert answer == "answer"
    assert before < seen.start < seen.end < after
    assert not ledger.admits(VM_2, seen)  # the event came while it was out


async def test_an_answer_older_than_the_horizon_is_never_admitted_and_old_entries_go() -> None:
    clock = FakeClock()
    ledger = Freshness(clock)
    seen = ledger.finish(ledger.begin())
    assert ledger.admit(VM_1, seen)
    await clock.advance(HORIZON + 61.0)
    assert not ledger.admits(VM_1, seen)
    later = ledger.finish(ledger.begin())
    assert ledger.admit(VM_2, later)  # prunes what is older than the horizon
    assert ledger.tracked == 1


@pytest.mark.parametrize(
    ("events", "asked_after", "changed"),
    [
        pytest.param([], 0, False, id="nothing-announced"),
        pytest.param(["announce"], 0, True, id="announced-after"),
        pytest.param(["announce"], 1, False, id="announced-before"),
        pytest.param(["other-vm"], 0, False, id="another-vm"),
        pytest.param(["reconnect"], 0, True, id="stream-reconnected-after"),
        pytest.param(["reconnect"], 1, False, id="stream-reconnected-before"),
    ],
)
def test_whether_a_vm_may_have_changed_since_a_ticket(
    events: list[str], asked_after: int, changed: bool
) -> None:
    ledger = Freshness()
    ticket = ledger.ticket()
    for event in events:
        {
            "announce": lambda: ledger.announce("VM-1"),
            "other-vm": lambda: ledger.announce("vm-2"),
            "reconnect": ledger.announce_all,
        }[event]()
    if asked_after:
        ticket = ledger.ticket()
    assert ledger.changed_since("vm-1", ticket) is changed
