"""The round-robin placement rules as upstream's core tests state them.

The rules and the properties: docs/upstream.md#round-robin-placement.
"""

from __future__ import annotations

import random

from spider.core.ids import AssignmentId, JobId, ResourceGroupId, SessionId
from spider.core.ready_task import ReadyTask
from spider.core.task_id import TaskId
from spider.scheduler.assignment import IssuedAssignment
from spider.scheduler.placement import RoundRobinPlacement

GROUP = ResourceGroupId(7)
SESSION = SessionId(3)


def task(job: int, index: int) -> ReadyTask:
    return ReadyTask(GROUP, JobId(job), TaskId.index(index))


def commit(job: int) -> ReadyTask:
    return ReadyTask(GROUP, JobId(job), TaskId.COMMIT)


def cleanup(job: int) -> ReadyTask:
    return ReadyTask(GROUP, JobId(job), TaskId.CLEANUP)


def placement(capacity: int = 16, expiration: float = 300.0) -> RoundRobinPlacement:
    state = RoundRobinPlacement(capacity, expiration)
    state.start_session(SESSION)
    return state


def load(state: RoundRobinPlacement, *entries: ReadyTask, now: float = 0.0) -> None:
    for entry in entries:
        state.load(entry, now)


def order(assignments: list[IssuedAssignment]) -> list[tuple[int, str]]:
    return [(a.entry.job_id, str(a.entry.task_id)) for a in assignments]


def test_single_capacity_pool_schedules_jobs_serially() -> None:
    state = placement(capacity=1)
    load(state, task(1, 0), task(2, 0), task(1, 1), task(2, 1), task(3, 0))

    decided = state.decide(100)

    assert order(decided) == [
        (1, "Index(0)"),
        (1, "Index(1)"),
        (2, "Index(0)"),
        (2, "Index(1)"),
        (3, "Index(0)"),
    ]


def test_active_jobs_dispatch_in_strict_rotation_and_duplicates_are_buffered_once() -> None:
    state = placement(capacity=4)
    for index in range(3):
        load(state, task(1, index), task(2, index), task(3, index))
    load(state, task(2, 1), task(3, 2))  # duplicates of buffered tasks

    decided = state.decide(100)

    assert order(decided) == [(job, f"Index({index})") for index in range(3) for job in (1, 2, 3)]
    assert state.buffered == 0


def test_pending_jobs_are_promoted_in_arrival_order_and_join_the_rotation() -> None:
    state = placement(capacity=2)
    load(state, task(1, 0), task(2, 0), task(2, 1), task(3, 0), task(3, 1), task(4, 0))
    assert state.active_jobs == [1, 2]
    assert state.pending_jobs == [3, 4]

    decided = state.decide(100)

    # Job 1 runs dry and is retired when the cursor finds it empty; job 3 takes its place at
    # the end of the ring, then job 4 when job 2 is retired.
    assert order(decided) == [
        (1, "Index(0)"),
        (2, "Index(0)"),
        (2, "Index(1)"),
        (3, "Index(0)"),
        (3, "Index(1)"),
        (4, "Index(0)"),
    ]
    assert state.pending_jobs == []


def test_each_pass_dispatches_a_commit_chunk_then_one_cleanup_then_one_task_per_job() -> None:
    state = placement(capacity=2)
    load(state, task(1, 0), task(1, 1), task(2, 0), task(2, 1))
    load(state, commit(10), commit(11), commit(12), commit(10))  # commit(10) twice: once
    load(state, cleanup(20), cleanup(21))

    decided = state.decide(100)

    assert order(decided) == [
        (10, "Commit"),
        (11, "Commit"),  # chunk bounded by the active job capacity (2)
        (20, "Cleanup"),
        (1, "Index(0)"),
        (2, "Index(0)"),
        (12, "Commit"),
        (21, "Cleanup"),
        (1, "Index(1)"),
        (2, "Index(1)"),
    ]


def test_decisions_stop_at_the_free_slots_and_resume_where_they_left_off() -> None:
    state = placement(capacity=4)
    load(state, task(1, 0), task(1, 1), task(2, 0), task(2, 1))

    first = state.decide(3)
    second = state.decide(3)

    assert order(first) == [(1, "Index(0)"), (2, "Index(0)"), (1, "Index(1)")]
    assert order(second) == [(2, "Index(1)")]


def test_commit_ready_drops_active_and_pending_jobs_and_gates_late_tasks() -> None:
    state = placement(capacity=1)
    load(state, task(1, 0), task(1, 1), task(2, 0), task(2, 1), task(3, 0))
    assert state.active_jobs == [1]

    load(state, commit(1), commit(2))  # 1 is active, 2 is pending
    load(state, task(1, 2), task(2, 2))  # late re-deliveries of finalizing jobs
    load(state, task(4, 0))  # a canary: ordinary work still flows

    decided = state.decide(100)

    assert order(decided) == [
        (1, "Commit"),
        (3, "Index(0)"),  # promoted when job 1 was retired
        (2, "Commit"),
        (4, "Index(0)"),
    ]
    assert state.is_finalizing(JobId(1))
    assert state.is_finalizing(JobId(2))


def test_cleanup_ready_drops_active_and_pending_jobs() -> None:
    state = placement(capacity=1)
    load(state, task(1, 0), task(2, 0), task(2, 1))
    load(state, cleanup(1), cleanup(2), task(1, 5))

    decided = state.decide(100)

    assert order(decided) == [(1, "Cleanup"), (2, "Cleanup")]
    assert state.buffered == 0


def test_finalizing_gate_expires() -> None:
    state = placement(expiration=300.0)
    load(state, commit(1), now=0.0)
    state.decide(100)
    assert state.next_expiry() == 300.0
    load(state, task(1, 0), now=299.0)
    assert state.buffered == 0

    assert state.retire_expired(300.0) == 1
    load(state, task(1, 0), now=300.0)

    assert order(state.decide(100)) == [(1, "Index(0)")]


def test_session_bump_clears_buffered_tasks() -> None:
    state = placement(capacity=1)
    load(state, task(1, 0), task(2, 0), commit(3), cleanup(4))

    state.start_session(SessionId(SESSION + 1))

    assert state.buffered == 0
    assert state.active_jobs == []
    assert state.pending_jobs == []
    assert not state.is_finalizing(JobId(3))
    assert state.decide(100) == []
    load(state, task(1, 0))
    decided = state.decide(100)
    assert [a.session for a in decided] == [SESSION + 1]


def test_a_dispatched_task_delivered_again_is_dispatched_again() -> None:
    # Storage rejects the second instance; the scheduler does not remember dispatches.
    state = placement()
    load(state, task(1, 0))
    first = state.decide(1)
    load(state, task(1, 0))
    second = state.decide(1)

    assert order(first) == order(second)
    assert first[0].id != second[0].id


def test_assignment_ids_are_unique_and_never_zero() -> None:
    state = placement(capacity=3)
    rng = random.Random(4)
    ids: list[AssignmentId] = []
    for round_ in range(50):
        load(state, *(task(rng.randrange(8), round_ * 10 + i) for i in range(5)))
        ids.extend(a.id for a in state.decide(rng.randrange(1, 6)))
    ids.extend(a.id for a in state.decide(1000))

    assert len(ids) == 250
    assert len(set(ids)) == len(ids)
    assert 0 not in ids
