"""The task-instance pool sweep: dead EMs, soft timeouts and storage's own hard timeout.

Every ``task_instance_pool.gc_interval_sec`` (the first sweep one interval after start):

1. EMs whose last heartbeat is older than ``execution_manager_stale_cutoff_sec`` are declared
   dead in the database;
2. each live instance is then examined, oldest first:
   * its EM is dead: the instance is removed and its task re-enqueued; no retry is used;
   * it is older than its hard timeout plus ``hard_timeout_grace_sec``: it fails as if its EM
     had reported ``hard timeout (N ms) exceeded (enforced by storage)``, which uses a retry or
     fails the job (upstream has no such check, so a hung EM that keeps heartbeating held its
     instance forever);
   * it passed its soft timeout: its task is enqueued once more (once per instance), and the
     instance keeps running.

While the database is unavailable no instance times out: its EM could not have reported it.
The sweep still asks the database about stale EMs (counting only EMs already silent before the
outage began) and removes the instances of dead ones, but times none out while the database
still cannot write; the outage's end postpones the deadlines it overlapped
(docs/storage.md#database-outages). A sweep that fails on the database is skipped with a
warning; the next one tries again.

Revocations (``spider.storage.revocations``) of the dead EMs, and those past their instance's
hard deadline, are forgotten first.
"""

from __future__ import annotations

import logging
from typing import NoReturn

import attrs
import trio

from spider.storage._ticks import next_tick
from spider.storage.errors import StorageUnavailable
from spider.storage.job_lifecycle import JobLifecycle

LOGGER = logging.getLogger("spider.storage.instance_gc")


@attrs.frozen
class SweepReport:
    """What one sweep did."""

    dead_execution_managers: int = 0
    removed_for_dead_em: int = 0
    hard_timeouts: int = 0
    soft_timeouts: int = 0


async def sweep_task_instances(lifecycle: JobLifecycle) -> SweepReport:
    """Run one sweep now (the GC loop calls this; tests call it directly)."""
    newly_dead = await lifecycle.liveness.declare_stale_dead()
    if newly_dead:
        LOGGER.warning(
            "declared %d execution manager(s) dead: %s; their instances are rescheduled",
            len(newly_dead),
            ", ".join(str(em_id) for em_id in newly_dead),
        )
    revocations = lifecycle.pool.revocations
    revocations.forget_execution_managers(newly_dead)
    # Past its hard deadline a revoked instance has been killed by its EM's own hard timeout.
    revocations.expire(lifecycle.monotonic())
    removed = hard = soft = 0
    outage = lifecycle.persistence.outage
    for record in lifecycle.pool.snapshot():
        # Earlier iterations may have awaited (a hard timeout failing a job): re-validate.
        if record.id not in lifecycle.pool:
            continue
        if not lifecycle.is_live(record):
            lifecycle.pool.discard([record.id])
        elif lifecycle.liveness.is_dead(record.execution_manager_id):
            lifecycle.remove_instance_of_dead_em(record)
            removed += 1
        elif outage.ongoing:
            continue
        elif lifecycle.monotonic() >= record.hard_deadline:
            LOGGER.warning(
                "instance %s of task %s of job %s exceeded its hard timeout (%d ms) plus grace "
                "on execution manager %s; failing it",
                record.id,
                record.task_id,
                record.job_id,
                record.timeout_policy.hard_timeout_ms,
                record.execution_manager_id,
            )
            await lifecycle.expire_hard_timeout(record)
            hard += 1
        elif not record.soft_timeout_handled and lifecycle.monotonic() >= record.soft_deadline:
            lifecycle.redispatch_after_soft_timeout(record)
            soft += 1
    return SweepReport(len(newly_dead), removed, hard, soft)


async def run_task_instance_gc(
    lifecycle: JobLifecycle,
    interval: float,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> NoReturn:
    """Sweep every ``interval`` seconds; ticks missed by a slow sweep are skipped."""
    task_status.started()
    deadline = trio.current_time() + interval
    while True:
        await trio.sleep_until(deadline)
        try:
            await sweep_task_instances(lifecycle)
        except StorageUnavailable as exc:
            LOGGER.warning("task-instance sweep skipped: %s", exc)
        deadline = next_tick(deadline, interval, trio.current_time())
