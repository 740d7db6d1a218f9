"""The revocation poller in the EM runtime: storage's revoked instances are killed in the pool,
not reported, and their slot goes on; an upstream storage is asked once; the poller ends with
the EM."""

from __future__ import annotations

import logging

import pytest
import trio
import trio.testing

from spider.core.ids import ExecutionManagerId, SessionId, TaskInstanceId
from spider.em.pool import TaskOutcome, TaskRequest
from spider.em.runtime import ExtensionSettings

from .fakes import EM_ID, FakePool, FakeRevocations, assignment, context, transport
from .harness import Em, settings

WAIT_MS = 3_000


async def hang(request: TaskRequest) -> TaskOutcome:
    await trio.sleep_forever()


def revoking_em(*, enabled: bool = True) -> tuple[Em, FakeRevocations]:
    revocations = FakeRevocations()
    em = Em(
        pool=FakePool(behaviours={"hang": hang}),
        revocations=revocations,
        settings=settings(
            extension=ExtensionSettings(enabled=enabled, revocation_poll_wait_ms=WAIT_MS)
        ),
    )
    return em, revocations


async def test_a_revoked_running_task_is_killed_not_reported_and_its_slot_runs_the_next(
    autojump_clock: trio.testing.MockClock,
) -> None:
    em, revocations = revoking_em()
    em.storage.register_replies.extend(
        [context("hang", instance=1, hard_timeout_ms=60_000), context("echo", instance=2)]
    )
    em.scheduler.push(assignment(1), assignment(2))
    async with em.running():
        await em.pool.wait_until(lambda: len(em.pool.started) == 1)
        await revocations.wait_until(lambda: revocations.waiting == 1)
        revoked_at = trio.current_time()
        revocations.revoke(1)
        await em.pool.wait_until(lambda: len(em.pool.finished) == 1)
        assert trio.current_time() == revoked_at
        await em.storage.wait_until(lambda: len(em.storage.successes) == 1)
        assert em.storage.successes[0].target.task_instance_id == TaskInstanceId(2)
        assert em.storage.failures == []
        assert em.pool.revoked == [[TaskInstanceId(1)]]
        # The next poll acknowledges the answer.
        await revocations.wait_until(lambda: len(revocations.calls) == 2)
        assert revocations.calls == [(SessionId(0), 0, WAIT_MS), (SessionId(5), 1, WAIT_MS)]
        assert revocations.pending == []
    assert em.error is None


async def test_an_instance_not_running_here_is_handed_to_the_pool_and_nothing_else_happens(
    autojump_clock: trio.testing.MockClock,
) -> None:
    em, revocations = revoking_em()
    async with em.running():
        await revocations.wait_until(lambda: revocations.waiting == 1)
        revocations.revoke(9)
        await em.pool.wait_until(lambda: em.pool.revoked == [[TaskInstanceId(9)]])
    assert em.pool.started == []
    assert em.error is None


async def test_an_upstream_storage_is_asked_once_and_logged_once_at_info(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="spider")
    em, revocations = revoking_em()
    revocations.extension = False
    em.storage.register_replies.append(context("echo", instance=1))
    em.scheduler.push(assignment(1))
    async with em.running():
        await em.storage.wait_until(lambda: len(em.storage.successes) == 1)
        await trio.sleep(300)
    assert len(revocations.calls) == 1
    fallback = [r for r in caplog.records if "WaitRevokedInstances" in r.getMessage()]
    assert [r.levelno for r in fallback] == [logging.INFO]
    assert em.error is None


async def test_failed_polls_are_retried_with_backoff_and_keep_the_cursor(
    autojump_clock: trio.testing.MockClock,
) -> None:
    em, revocations = revoking_em()
    revocations.errors.extend([transport(), transport()])
    revocations.revoke(4)
    async with em.running():
        await em.pool.wait_until(lambda: em.pool.revoked == [[TaskInstanceId(4)]])
        await revocations.wait_until(lambda: len(revocations.calls) == 4)
    assert [call[:2] for call in revocations.calls] == [
        (SessionId(0), 0),
        (SessionId(0), 0),
        (SessionId(0), 0),
        (SessionId(5), 1),
    ]


async def test_the_poller_ends_with_the_em(autojump_clock: trio.testing.MockClock) -> None:
    em, revocations = revoking_em()
    async with em.running():
        await revocations.wait_until(lambda: revocations.waiting == 1)
        stop_at = trio.current_time()
        await em.stop()
    assert em.finished_at == stop_at
    assert revocations.waiting == 0
    assert em.error is None


async def test_without_the_extension_the_em_never_polls(
    autojump_clock: trio.testing.MockClock,
) -> None:
    em, revocations = revoking_em(enabled=False)
    em.storage.register_replies.append(context("echo", instance=1))
    em.scheduler.push(assignment(1))
    async with em.running():
        await em.storage.wait_until(lambda: len(em.storage.successes) == 1)
    assert revocations.calls == []


async def test_after_registering_again_the_poller_asks_under_the_new_id_and_kills_its_tasks(
    autojump_clock: trio.testing.MockClock,
) -> None:
    em, revocations = revoking_em()
    new_id = ExecutionManagerId(EM_ID + 1)
    em.storage.register_replies.append(context("hang", instance=7, hard_timeout_ms=60_000))
    async with em.running():
        await em.wait_polling()
        em.storage.dead.add(EM_ID)
        await em.scheduler.wait_until(lambda: new_id in em.scheduler.em_ids)
        em.scheduler.push(assignment(1))
        await em.pool.wait_until(lambda: len(em.pool.started) == 1)
        await revocations.wait_until(
            lambda: revocations.waiting == 1 and revocations.em_ids[-1] == new_id
        )
        revocations.revoke(7)
        await em.pool.wait_until(lambda: len(em.pool.finished) == 1)
        assert em.pool.revoked == [[TaskInstanceId(7)]]
    assert em.storage.failures == []
    assert em.storage.successes == []
    # The dead id's poller ended with its life: every call after the first new-id one is new.
    first_new = revocations.em_ids.index(new_id)
    assert set(revocations.em_ids[:first_new]) == {EM_ID}
    assert set(revocations.em_ids[first_new:]) == {new_id}
