"""The liveness loop and the scheduler heartbeat, inside the runtime, on the mock clock."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from spider.core.ids import SessionId
from spider.em.errors import IllegalId, LivenessLost, MarkedDead
from spider.em.life import OnDeclaredDead

from .fakes import assignment, context, transport
from .harness import Em, settings


async def test_liveness_and_scheduler_heartbeats_advance_in_lockstep(
    autojump_clock: trio.testing.MockClock,
) -> None:
    em = Em()
    async with em.running():
        start = trio.current_time()
        await trio.sleep(0.35)
        liveness = [round(t - start, 9) for t in em.storage.heartbeat_times]
        scheduler = [round(t - start, 9) for t in em.scheduler.heartbeat_times]
    assert liveness == scheduler == [0.0, 0.1, 0.2, 0.3]


async def test_liveness_waits_one_period_after_each_heartbeat_ends(
    autojump_clock: trio.testing.MockClock,
) -> None:
    em = Em()
    em.storage.heartbeat_delay = 0.05
    async with em.running():
        start = trio.current_time()
        await trio.sleep(0.48)
        liveness = [round(t - start, 9) for t in em.storage.heartbeat_times]
        scheduler = [round(t - start, 9) for t in em.scheduler.heartbeat_times]
    # Liveness: period after the end of the previous beat; scheduler: a fixed schedule.
    assert liveness == [0.0, 0.15, 0.3, 0.45]
    assert scheduler == [0.0, 0.1, 0.2, 0.3, 0.4]


async def test_a_slow_scheduler_heartbeat_skips_missed_ticks(
    autojump_clock: trio.testing.MockClock,
) -> None:
    em = Em(settings=settings(scheduler_heartbeat_interval=1.0))
    original = em.scheduler.heartbeat

    async def slow_first(em_id: object) -> None:
        await original(em_id)  # type: ignore[arg-type]
        if len(em.scheduler.heartbeat_times) == 1:
            await trio.sleep(2.5)

    em.scheduler.heartbeat = slow_first  # type: ignore[method-assign]
    async with em.running():
        start = trio.current_time()
        await trio.sleep(4.5)
        scheduler = [round(t - start, 9) for t in em.scheduler.heartbeat_times]
    assert scheduler == [0.0, 3.0, 4.0]


async def test_heartbeat_advances_the_session_and_transport_errors_do_not_stop_the_em(
    autojump_clock: trio.testing.MockClock,
) -> None:
    em = Em()
    em.storage.heartbeat_replies.extend([transport(), transport()])
    async with em.running():
        await em.storage.wait_until(lambda: em.storage.register_em_calls == 1)
        em.storage.session = SessionId(7)
        await em.storage.wait_until(lambda: len(em.storage.heartbeat_times) >= 6)
        # Session 7 is current now: an assignment of session 5 is stale and never registered.
        em.scheduler.push(assignment(1, session=5))
        await em.scheduler.wait_until(
            lambda: em.scheduler.outstanding == [] and len(em.scheduler.next_task_calls) >= 2
        )
    assert em.error is None
    assert em.storage.register_calls == []


async def test_a_newer_assignment_session_triggers_an_immediate_heartbeat(
    autojump_clock: trio.testing.MockClock,
) -> None:
    em = Em(settings=settings(storage_heartbeat_interval=5.0))
    em.storage.register_replies.append(context())
    async with em.running():
        await em.wait_polling()
        beats = len(em.storage.heartbeat_times)
        pushed_at = trio.current_time()
        em.storage.session = SessionId(10)
        em.scheduler.push(assignment(1, session=10))
        await em.storage.wait_until(lambda: len(em.storage.heartbeat_times) > beats)
        assert em.storage.heartbeat_times[-1] == pushed_at
        await em.storage.wait_until(lambda: len(em.storage.successes) == 1)
    assert em.storage.register_calls[0].assignment.session == 10
    assert em.storage.successes[0].target.session == 10


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (MarkedDead("already dead", operation="UpdateExecutionManagerHeartbeat"), "dead"),
        (IllegalId("unknown id 77", operation="UpdateExecutionManagerHeartbeat"), "does not know"),
        (SessionId(4), "went backwards from 5 to 4"),
    ],
)
async def test_liveness_loss_stops_the_em_with_an_error_after_acknowledging(
    autojump_clock: trio.testing.MockClock, reply: SessionId | Exception, expected: str
) -> None:
    # Declared dead, the EM stops only with on_declared_dead: exit (test_em_rejoin.py: rejoin).
    em = Em(settings=settings(on_declared_dead=OnDeclaredDead.EXIT))
    em.storage.register_replies.append(context("hang"))

    async def hang(request: object) -> object:
        await trio.sleep_forever()

    em.pool.behaviours["hang"] = hang  # type: ignore[assignment]
    async with em.running():
        em.scheduler.push(assignment(1))
        await em.pool.wait_until(lambda: len(em.pool.started) == 1)
        em.storage.heartbeat_replies.append(reply)  # type: ignore[arg-type]
        await em.done.wait()
    assert isinstance(em.error, LivenessLost)
    assert expected in str(em.error)
    # A fast stop: the running task was killed at once and Shutdown acknowledged its record.
    assert em.pool.finished == em.pool.started
    assert em.scheduler.shutdown_calls == [[assignment(1).record]]
    assert em.scheduler.outstanding == []
    heartbeats = len(em.storage.heartbeat_times)
    await trio.sleep(1.0)
    assert len(em.storage.heartbeat_times) == heartbeats
