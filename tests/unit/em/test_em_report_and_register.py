"""``ReportAndRegister``: a slot's outcome rides with its next registration, and is reported
exactly as a queued one would be whatever happens to that call."""

from __future__ import annotations

import trio
import trio.testing

from spider.em.errors import StaleSessionAnswer
from spider.em.runtime import ExtensionSettings

from .fakes import FakePool, Report, assignment, context, transport
from .harness import Em, settings


def carrying_em(*, combined: bool = True) -> Em:
    em = Em(
        pool=FakePool(size=1),
        settings=settings(extension=ExtensionSettings(max_tasks_per_poll=4, prefetch_per_slot=1)),
    )
    em.scheduler.extension = True
    em.storage.extension = True
    em.storage.combined = combined
    return em


def instances(reports: list[Report]) -> list[int]:
    return [report.target.task_instance_id for report in reports]


async def test_an_outcome_rides_with_the_next_registration_of_its_slot(
    autojump_clock: trio.testing.MockClock,
) -> None:
    em = carrying_em()
    em.storage.register_replies.extend(context(instance=n) for n in (1, 2, 3))
    async with em.running():
        em.scheduler.push(assignment(1), assignment(2), assignment(3))
        await em.storage.wait_until(lambda: len(em.storage.successes) == 3)
    # 1 is registered alone; 2 and 3 each carry the outcome before them; the last outcome,
    # with nothing after it, goes alone.
    assert em.storage.combined_calls == [(1, 1), (1, 1)]
    # (The fake counts the combined calls' items among its batches too: each item went once.)
    assert em.storage.register_batches == [1, 1, 1]
    assert em.storage.batch_sizes == [1, 1, 1]
    assert instances(em.storage.successes) == [1, 2, 3]
    assert em.scheduler.outstanding == []


async def test_an_outcome_whose_call_got_no_answer_is_reported_alone(
    autojump_clock: trio.testing.MockClock,
) -> None:
    em = carrying_em()
    em.storage.combined_errors.append(transport())
    em.storage.register_replies.extend(context(instance=n) for n in (1, 2))
    async with em.running():
        em.scheduler.push(assignment(1), assignment(2))
        await em.storage.wait_until(lambda: len(em.storage.successes) == 2)
    assert em.storage.combined_calls == [(1, 1)]
    # The failed call settled nothing: outcome 1 went to the reporter's queue and registration
    # 2 was retried, each on its own.
    assert instances(em.storage.successes) == [1, 2]
    assert [c.assignment.id for c in em.storage.register_calls] == [1, 2]
    assert em.scheduler.outstanding == []


async def test_a_carried_outcome_storage_rejects_is_dropped_not_retried(
    autojump_clock: trio.testing.MockClock,
) -> None:
    em = carrying_em()
    em.storage.register_replies.extend(context(instance=n) for n in (1, 2))
    async with em.running():
        em.scheduler.push(assignment(1), assignment(2))
        await em.storage.wait_until(lambda: len(em.storage.register_calls) == 1)
        em.storage.report_replies.append(StaleSessionAnswer("old session"))
        await em.storage.wait_until(lambda: len(em.storage.successes) == 1)
    assert em.storage.combined_calls == [(1, 1)]
    assert em.storage.report_attempts == 2  # outcome 1 once (rejected), outcome 2 once
    assert instances(em.storage.successes) == [2]


async def test_a_storage_without_the_call_is_asked_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    em = carrying_em(combined=False)
    em.storage.register_replies.extend(context(instance=n) for n in (1, 2, 3))
    async with em.running():
        em.scheduler.push(assignment(1), assignment(2), assignment(3))
        await em.storage.wait_until(lambda: len(em.storage.successes) == 3)
    assert em.storage.combined_refused == 1
    assert em.storage.combined_calls == []
    assert instances(em.storage.successes) == [1, 2, 3]
    assert sum(em.storage.batch_sizes) == 3
    assert em.scheduler.outstanding == []


async def test_a_stop_during_the_call_reports_the_outcome_and_hands_the_assignment_back(
    autojump_clock: trio.testing.MockClock,
) -> None:
    em = carrying_em()
    em.storage.register_replies.append(context(instance=1))
    async with em.running():
        em.scheduler.push(assignment(1), assignment(2))
        await em.storage.wait_until(lambda: len(em.storage.register_calls) == 1)
        em.storage.block_combined = True
        await em.storage.wait_until(lambda: len(em.storage.combined_calls) == 1)
        await em.stop()
    # The drain reported outcome 1 alone; 2 was never registered, so it goes back unacknowledged.
    assert instances(em.storage.successes) == [1]
    assert [c.assignment.id for c in em.storage.register_calls] == [1]
    assert em.scheduler.shutdown_calls == [[assignment(1).record]]
    assert em.scheduler.outstanding == [assignment(2).record]
