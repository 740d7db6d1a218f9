"""Spider-py's execution extension in the EM: ``NextTasks`` with prefetch, batched reports, and
the fallback to Spider's single RPCs when a peer does not serve them."""

from __future__ import annotations

import trio
import trio.testing

from spider.em.errors import StaleSessionAnswer
from spider.em.pool import TaskOutcome, TaskRequest, TaskSucceeded
from spider.em.runtime import ExtensionSettings

from .fakes import FakePool, assignment, context, transport
from .harness import Em, settings


async def slow(request: TaskRequest) -> TaskOutcome:
    """Takes one second."""
    await trio.sleep(1.0)
    return TaskSucceeded(request.serialized_task_io, 1_000_000)


def batching_em(*, slots: int = 1, max_tasks_per_poll: int = 4, prefetch_per_slot: int = 1) -> Em:
    extension = ExtensionSettings(
        max_tasks_per_poll=max_tasks_per_poll, prefetch_per_slot=prefetch_per_slot
    )
    em = Em(
        pool=FakePool(size=slots, behaviours={"slow": slow}),
        settings=settings(extension=extension),
    )
    em.scheduler.extension = True
    em.storage.extension = True
    return em


async def test_one_slot_takes_its_next_assignment_ahead_and_registers_it_only_when_it_starts(
    autojump_clock: trio.testing.MockClock,
) -> None:
    em = batching_em(max_tasks_per_poll=4, prefetch_per_slot=1)
    em.storage.register_replies.extend(context("slow", instance=n) for n in (1, 2, 3))
    async with em.running():
        em.scheduler.push(assignment(1), assignment(2), assignment(3))
        await em.pool.wait_until(lambda: len(em.pool.started) == 1)
        await trio.sleep(0.5)
        # Assignments 1 and 2 came in one call; 2 waits unregistered (its timeout not running).
        assert [a.id for a in (c.assignment for c in em.storage.register_calls)] == [1]
        assert em.scheduler.next_tasks_calls[0] == ([], 2)
        assert len(em.scheduler.responses) == 1
        await em.storage.wait_until(lambda: len(em.storage.successes) == 3)
    assert [c.assignment.id for c in em.storage.register_calls] == [1, 2, 3]
    # The second call went out when task 2 started; it acknowledged 1 and 2 together.
    assert em.scheduler.next_tasks_calls[1] == (
        [assignment(1).record, assignment(2).record],
        2,
    )
    assert em.scheduler.outstanding == []
    assert em.scheduler.next_task_calls == []  # NextTask never used


async def test_a_prefetched_assignment_not_started_at_a_stop_goes_back_unacknowledged(
    autojump_clock: trio.testing.MockClock,
) -> None:
    em = batching_em(max_tasks_per_poll=4, prefetch_per_slot=1)
    em.storage.register_replies.append(context("slow", instance=1))
    async with em.running():
        em.scheduler.push(assignment(1), assignment(2))
        await em.pool.wait_until(lambda: len(em.pool.started) == 1)
        await em.stop()
    assert [c.assignment.id for c in em.storage.register_calls] == [1]
    assert len(em.storage.successes) == 1
    # Record 1 is acknowledged; 2 is not, so the scheduler reschedules it after Shutdown.
    assert em.scheduler.shutdown_calls == [[assignment(1).record]]
    assert em.scheduler.outstanding == [assignment(2).record]


async def test_one_slot_polls_for_all_idle_slots_so_none_waits_while_work_is_prefetched(
    autojump_clock: trio.testing.MockClock,
) -> None:
    em = batching_em(slots=3, max_tasks_per_poll=8, prefetch_per_slot=1)
    em.storage.register_replies.extend(context("slow", instance=n) for n in (1, 2, 3))
    async with em.running():
        await em.scheduler.wait_until(lambda: em.scheduler.polling == 1)
        await trio.sleep(0.1)
        assert em.scheduler.polling == 1  # the others wait for its answer instead of polling
        pushed_at = trio.current_time()
        em.scheduler.push(assignment(1), assignment(2), assignment(3))
        await em.pool.wait_until(lambda: len(em.pool.started) == 3)
        assert trio.current_time() == pushed_at  # all three started at once
        assert len(em.scheduler.next_tasks_calls) == 1
        await em.storage.wait_until(lambda: len(em.storage.successes) == 3)
    # One call asked for itself, the two waiting slots and the prefetch room of three slots.
    assert em.scheduler.next_tasks_calls[0] == ([], 6)


async def test_outcomes_queued_behind_a_report_call_go_together(
    autojump_clock: trio.testing.MockClock,
) -> None:
    em = batching_em()
    em.storage.batch_delay = 0.5
    em.storage.register_replies.extend(context(instance=n) for n in range(1, 6))
    async with em.running():
        em.scheduler.push(*(assignment(n) for n in range(1, 6)))
        await em.storage.wait_until(lambda: len(em.storage.successes) == 5)
    assert em.storage.batch_sizes == [1, 4]
    assert [r.target.task_instance_id for r in em.storage.successes] == [1, 2, 3, 4, 5]


async def test_a_batched_item_is_retried_alone_or_dropped_as_its_single_report_would_be(
    autojump_clock: trio.testing.MockClock,
) -> None:
    em = batching_em()
    em.storage.batch_delay = 0.5
    em.storage.register_replies.extend(context(instance=n) for n in (1, 2, 3))
    async with em.running():
        em.scheduler.push(assignment(1), assignment(2), assignment(3))
        await em.storage.wait_until(lambda: len(em.storage.successes) == 1)
        # In the next batch (2 and 3, answered after 0.5 s): 2 fails transiently, 3 is
        # rejected as stale.
        em.storage.report_replies.extend([transport(), StaleSessionAnswer("old session")])
        await em.storage.wait_until(lambda: len(em.storage.successes) == 2)
    assert em.storage.batch_sizes == [1, 2]
    assert em.storage.report_attempts == 4  # 1, then 2 and 3, then 2 alone
    assert [r.target.task_instance_id for r in em.storage.successes] == [1, 2]
    assert em.scheduler.outstanding == []


async def test_a_failed_batch_call_falls_back_to_single_reports(
    autojump_clock: trio.testing.MockClock,
) -> None:
    em = batching_em()
    em.storage.batch_errors.append(transport())
    em.storage.register_replies.append(context())
    async with em.running():
        em.scheduler.push(assignment(1))
        await em.storage.wait_until(lambda: len(em.storage.successes) == 1)
    assert em.storage.batch_sizes == [1]
    assert em.storage.report_attempts == 1  # the single report that followed


async def test_peers_without_the_extension_are_asked_once_and_get_single_rpcs(
    autojump_clock: trio.testing.MockClock,
) -> None:
    em = Em(settings=settings(extension=ExtensionSettings()))
    assert not em.scheduler.extension
    em.storage.register_replies.extend(context(instance=n) for n in (1, 2, 3))
    async with em.running():
        em.scheduler.push(assignment(1), assignment(2), assignment(3))
        await em.storage.wait_until(lambda: len(em.storage.successes) == 3)
    # One refused NextTasks, one refused ReportTaskOutcomes, one refused RegisterTaskInstances.
    assert (em.scheduler.refused, em.storage.refused) == (1, 2)
    assert em.scheduler.next_task_calls[:2] == [None, assignment(1).record]
    assert em.storage.report_attempts == 3
    assert em.scheduler.outstanding == []


async def test_the_extension_switched_off_is_never_called(
    autojump_clock: trio.testing.MockClock,
) -> None:
    em = Em(settings=settings(extension=ExtensionSettings(enabled=False)))
    em.storage.register_replies.append(context())
    async with em.running():
        em.scheduler.push(assignment(1))
        await em.storage.wait_until(lambda: len(em.storage.successes) == 1)
    assert (em.scheduler.refused, em.storage.refused) == (0, 0)


async def test_registrations_of_slots_starting_together_share_a_call(
    autojump_clock: trio.testing.MockClock,
) -> None:
    em = batching_em(slots=3)
    em.storage.register_delay = 0.5
    em.storage.register_replies.extend(context(instance=n) for n in (1, 2, 3))
    async with em.running():
        await em.scheduler.wait_until(lambda: em.scheduler.polling == 1)
        em.scheduler.push(assignment(1), assignment(2), assignment(3))
        await em.storage.wait_until(lambda: len(em.storage.successes) == 3)
    # Fewer calls than registrations: what was asked for while a call was in flight (or
    # before it left) went together.
    assert sum(em.storage.register_batches) == 3
    assert len(em.storage.register_batches) < 3
    assert sorted(c.assignment.id for c in em.storage.register_calls) == [1, 2, 3]
    assert em.scheduler.outstanding == []


async def test_a_registration_rejected_in_a_batch_is_dropped_and_acknowledged_alone(
    autojump_clock: trio.testing.MockClock,
) -> None:
    em = batching_em(slots=3)
    em.storage.register_delay = 0.5
    em.storage.register_replies.extend(
        [context(instance=1), StaleSessionAnswer("old session"), context(instance=3)]
    )
    async with em.running():
        await em.scheduler.wait_until(lambda: em.scheduler.polling == 1)
        em.scheduler.push(assignment(1), assignment(2), assignment(3))
        await em.storage.wait_until(lambda: len(em.storage.successes) == 2)
    assert len(em.storage.register_calls) == 3
    assert em.scheduler.outstanding == []


async def test_a_stop_during_a_batched_registration_leaves_it_unacknowledged(
    autojump_clock: trio.testing.MockClock,
) -> None:
    em = batching_em(slots=2)
    em.storage.block_register = True
    async with em.running():
        await em.scheduler.wait_until(lambda: em.scheduler.polling == 1)
        em.scheduler.push(assignment(1), assignment(2))
        # Both slots took theirs: one call hangs, carrying one or both of them.
        await em.scheduler.wait_until(lambda: em.scheduler.polling == 0)
        await em.storage.wait_until(lambda: len(em.storage.register_calls) >= 1)
        await em.stop()
    assert em.pool.started == []
    assert em.scheduler.shutdown_calls == [[]]
    assert sorted(r.id for r in em.scheduler.outstanding) == [1, 2]
