"""Storage declares the EM dead: it registers again under a new id over the same pool (the
default, ``on_declared_dead: rejoin``), or stops (``exit``); stops at every point still drain."""

from __future__ import annotations

import logging

import pytest
import trio
import trio.testing

from spider.core.ids import ExecutionManagerId
from spider.em.errors import DeclaredDead, IllegalId, RegistrationRefused
from spider.em.life import OnDeclaredDead
from spider.em.pool import TaskOutcome, TaskRequest, TaskSucceeded

from .fakes import EM_ID, assignment, context, transport
from .harness import Em, settings

NEW_ID = ExecutionManagerId(EM_ID + 1)


def _em(**changes: object) -> Em:
    em = Em(**changes)  # type: ignore[arg-type]

    async def hang(request: TaskRequest) -> TaskOutcome:
        await trio.sleep_forever()

    async def seconds(request: TaskRequest) -> TaskOutcome:
        await trio.sleep(3.0)
        return TaskSucceeded(b"\x00\x00\x00\x00", 1)

    em.pool.behaviours.update(hang=hang, three_seconds=seconds)
    return em


async def _declare_dead(em: Em) -> None:
    """Storage declares the first id dead; wait until the EM polls under its new id."""
    em.storage.dead.add(EM_ID)
    await em.scheduler.wait_until(lambda: NEW_ID in em.scheduler.em_ids)


async def test_declared_dead_registers_again_under_a_new_id_over_the_same_pool(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    em = _em()
    em.storage.register_replies.append(context(instance=9))
    async with em.running():
        await em.wait_polling()
        await _declare_dead(em)
        beats = len(em.storage.heartbeat_ids)
        await em.storage.wait_until(lambda: len(em.storage.heartbeat_ids) >= beats + 3)
        em.scheduler.push(assignment(1))
        await em.storage.wait_until(lambda: len(em.storage.successes) == 1)
    assert em.error is None
    assert em.storage.em_ids == [EM_ID, NEW_ID]
    assert em.pool.opened == 1
    # The old id's Shutdown went out first; everything after it is the new id's.
    assert em.scheduler.shutdown_ems == [EM_ID, NEW_ID]
    first_new = em.scheduler.em_ids.index(NEW_ID)
    assert set(em.scheduler.em_ids[first_new:]) == {NEW_ID}
    assert set(em.storage.heartbeat_ids[beats:]) == {NEW_ID}
    assert em.storage.register_calls[0].em_id == NEW_ID
    assert em.storage.successes[0].target.em_id == NEW_ID
    (line,) = [r for r in caplog.records if r.getMessage().startswith("Storage had declared")]
    assert line.levelno == logging.WARNING
    fields = vars(line)
    assert (fields["old_em_id"], fields["em_id"]) == (EM_ID, NEW_ID)
    # Registered again at the first MarkedDead, one period after the last accepted heartbeat.
    assert fields["gone_s"] == pytest.approx(0.1)


async def test_the_silence_counts_from_when_the_last_accepted_heartbeat_was_sent(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    """An answer read late (the EM was paused with it in its socket) does not hide the silence
    storage saw: storage heard the heartbeat when it was sent, not when the EM read the OK."""
    em = _em()
    async with em.running():
        await em.wait_polling()
        em.storage.heartbeat_delay = 3.0  # each answer reaches the EM 3 s after the request
        beats = len(em.storage.heartbeat_ids)
        await em.storage.wait_until(lambda: len(em.storage.heartbeat_ids) == beats + 1)
        sent = trio.current_time()  # this beat is accepted, its answer read at sent + 3
        await em.storage.wait_until(lambda: len(em.storage.heartbeat_ids) == beats + 2)
        em.storage.dead.add(EM_ID)  # the next beat, sent at sent + 3.1, is refused at + 6.1
        await em.scheduler.wait_until(lambda: NEW_ID in em.scheduler.em_ids)
        rejoined = trio.current_time()
    (line,) = [r for r in caplog.records if r.getMessage().startswith("Storage had declared")]
    assert vars(line)["gone_s"] == pytest.approx(rejoined - sent, abs=0.01)
    assert vars(line)["gone_s"] >= 6.0


async def test_work_of_the_dead_id_is_killed_acknowledged_under_it_and_never_reported(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="spider.em")
    em = _em()
    em.pool = type(em.pool)(size=2, behaviours=dict(em.pool.behaviours))
    em.storage.register_replies.extend([context("hang"), context("echo", instance=2)])
    em.storage.block_reports = True
    async with em.running():
        em.scheduler.push(assignment(1), assignment(2))
        # One task hangs; the other has ended and its report waits for storage.
        await em.pool.wait_until(lambda: len(em.pool.started) == 2 and len(em.pool.finished) == 1)
        await em.storage.wait_until(lambda: em.storage.report_attempts == 1)
        await _declare_dead(em)
        # The hanging task was killed when the id died, not at the stop.
        assert len(em.pool.finished) == 2
        em.storage.block_reports = False
        em.storage.register_replies.append(context(instance=3))
        em.scheduler.push(assignment(3))
        await em.storage.wait_until(lambda: len(em.storage.successes) == 1)
    assert em.error is None
    # Both assignments of the old id were acknowledged under it, in its own Shutdown.
    assert em.scheduler.shutdown_ems[0] == EM_ID
    assert em.scheduler.shutdown_calls[0] == [assignment(1).record, assignment(2).record]
    assert em.scheduler.outstanding == []
    # Only the new id's task was reported; the old ones were dropped without an error line.
    assert [report.target.em_id for report in em.storage.reports] == [NEW_ID]
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert any(r.getMessage().startswith("Dropping 1 task outcomes") for r in caplog.records)


async def test_with_exit_the_em_stops_with_an_error_as_upstream_does(
    autojump_clock: trio.testing.MockClock,
) -> None:
    em = _em(settings=settings(on_declared_dead=OnDeclaredDead.EXIT))
    async with em.running():
        await em.wait_polling()
        em.storage.dead.add(EM_ID)
        await em.done.wait()
    assert isinstance(em.error, DeclaredDead)
    assert str(em.error).startswith(f"storage has declared execution manager {EM_ID} dead")
    assert "on_declared_dead: exit" in str(em.error)
    assert em.storage.em_ids == [EM_ID]
    assert em.scheduler.shutdown_ems == [EM_ID]


async def test_a_stop_between_lives_returns_without_registering_again(
    autojump_clock: trio.testing.MockClock,
) -> None:
    em = _em()
    async with em.running():
        await em.wait_polling()
        em.storage.register_em_replies.extend([transport()] * 1000)
        em.storage.dead.add(EM_ID)
        calls = em.storage.register_em_calls
        await em.storage.wait_until(lambda: em.storage.register_em_calls >= calls + 3)
        await em.stop()
    assert em.error is None
    assert em.storage.em_ids == [EM_ID]
    assert em.scheduler.shutdown_ems == [EM_ID]
    assert em.pool.opened == 1


async def test_a_refused_registration_between_lives_ends_the_em_with_an_error(
    autojump_clock: trio.testing.MockClock,
) -> None:
    em = _em()
    async with em.running():
        await em.wait_polling()
        em.storage.register_em_replies.append(IllegalId("no more EMs", operation="Register"))
        em.storage.dead.add(EM_ID)
        await em.done.wait()
    assert isinstance(em.error, RegistrationRefused)
    assert em.scheduler.shutdown_ems == [EM_ID]


async def test_a_stop_in_a_later_life_lets_its_task_finish_and_acknowledges_under_the_new_id(
    autojump_clock: trio.testing.MockClock,
) -> None:
    em = _em()
    em.storage.register_replies.append(context("three_seconds", instance=5))
    async with em.running():
        await em.wait_polling()
        await _declare_dead(em)
        em.scheduler.push(assignment(1))
        await em.pool.wait_until(lambda: len(em.pool.started) == 1)
        await em.stop()
    assert em.error is None
    (success,) = em.storage.successes
    assert success.target.em_id == NEW_ID
    assert em.scheduler.shutdown_ems == [EM_ID, NEW_ID]
    assert em.scheduler.shutdown_calls[1] == [assignment(1).record]
    assert em.scheduler.outstanding == []


async def test_declared_dead_during_a_stop_does_not_register_again(
    autojump_clock: trio.testing.MockClock,
) -> None:
    em = _em()
    em.storage.register_replies.append(context("hang"))
    async with em.running():
        em.scheduler.push(assignment(1))
        await em.pool.wait_until(lambda: len(em.pool.started) == 1)
        stopped_at = trio.current_time()
        em.em_stop.request("SIGTERM (test)")
        em.storage.dead.add(EM_ID)
        await em.done.wait()
    # The hanging task was killed with its id, well before the 10 s grace.
    assert em.finished_at is not None
    assert em.finished_at - stopped_at < 1.0
    assert em.error is None
    assert em.storage.em_ids == [EM_ID]
    assert em.scheduler.shutdown_calls == [[assignment(1).record]]
    assert em.storage.reports == []
