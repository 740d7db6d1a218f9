"""Session triage, and the admission decisions that follow from it and from storage's answer."""

from __future__ import annotations

import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from spider.core import SessionTracker
from spider.core.ids import SessionId
from spider.em.errors import (
    CacheStaleAnswer,
    InvalidInput,
    ProtocolError,
    ServerError,
    StaleSessionAnswer,
)
from spider.em.triage import Triage, triage

from .fakes import assignment, context, transport
from .harness import Em

sessions = st.integers(0, 2**64 - 1).map(SessionId)


@given(current=sessions, session=sessions)
def test_triage_compares_with_the_tracker(current: SessionId, session: SessionId) -> None:
    verdict = triage(SessionTracker(current), session)
    expected = (
        Triage.STALE if session < current else Triage.NEWER if session > current else Triage.CURRENT
    )
    assert verdict is expected


register_answers = st.sampled_from(
    ["ok", "stale", "cache", "invalid", "protocol", "server", "transport"]
)


def _reply(answer: str) -> list[object]:
    replies: dict[str, list[object]] = {
        "ok": [context()],
        "stale": [StaleSessionAnswer("stale session")],
        "cache": [CacheStaleAnswer("cache stale")],
        "invalid": [InvalidInput("bad")],
        "protocol": [ProtocolError("no context")],
        "server": [ServerError("internal"), ServerError("internal"), context()],
        "transport": [transport(), context()],
    }
    return replies[answer]


@settings(max_examples=40, deadline=None)
@given(
    items=st.lists(st.tuples(st.integers(3, 7), register_answers), min_size=1, max_size=6),
)
def test_every_assignment_is_acknowledged_and_only_current_ones_reach_storage(
    items: list[tuple[int, str]],
) -> None:
    """Whatever the sessions and storage's answers, every assignment is acknowledged (at least
    once: a poll cancelled at the stop may have delivered its record before Shutdown repeats
    it), storage only sees assignments that were not stale when they arrived, and exactly the
    registered ones run and are reported."""
    em = Em()
    # Storage answers session 5 to every heartbeat, so the tracker stays at 5: assignments of
    # sessions 6 and 7 are newer (registered in their own session), 3 and 4 are stale.
    expected_registers = 0
    expected_runs = 0
    for n, (session, answer) in enumerate(items, start=1):
        if session >= 5:
            replies = _reply(answer)
            em.storage.register_replies.extend(replies)  # type: ignore[arg-type]
            expected_registers += len(replies)
            expected_runs += answer in ("ok", "transport", "server")
        em.scheduler.push(assignment(n, session=session))

    async def scenario() -> None:
        async with em.running():
            await em.scheduler.wait_until(lambda: not em.scheduler.responses)
            await em.storage.wait_until(lambda: len(em.storage.reports) == expected_runs)
            await em.wait_polling(calls=len(items) + 1)

    trio.run(scenario, clock=trio.testing.MockClock(autojump_threshold=0))
    acknowledged = {r for r in em.scheduler.next_task_calls if r is not None}
    acknowledged |= {r for call in em.scheduler.shutdown_calls for r in call}
    assert acknowledged == {assignment(n).record for n in range(1, len(items) + 1)}
    assert em.scheduler.outstanding == []
    assert len(em.storage.register_calls) == expected_registers
    assert all(call.assignment.session >= 5 for call in em.storage.register_calls)
    assert len(em.pool.started) == len(em.storage.reports) == expected_runs
    assert not em.storage.register_replies
    assert em.error is None
