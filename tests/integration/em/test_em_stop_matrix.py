"""A stop at every step of the dispatch loop, and storage restarting under a registration and
a report: no outcome report is lost and every consumed assignment reaches the scheduler."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from .em_harness import Cluster, Gate, fake_cluster, inputs, outputs, running_em
from .fake_services import execution_context, scheduler_assignment


async def _complete_one(cluster: Cluster, n: int = 1) -> None:
    """Hand out assignment ``n`` (fibonacci(10)) and wait until its success is reported."""
    cluster.storage.register_replies.append(execution_context("fibonacci", inputs(10), instance=n))
    cluster.scheduler.push(scheduler_assignment(n))
    await cluster.storage.wait_until(lambda: len(cluster.storage.successes) >= n)


async def test_stop_before_the_first_poll(package_dir: Path) -> None:
    async with fake_cluster() as cluster, running_em(cluster, package_dir) as em:
        # The liveness loop starts before the pool, so this is before any dispatch loop runs.
        await cluster.storage.wait_until(lambda: cluster.storage.heartbeats >= 1)
        await em.stop()
    assert em.error is None
    assert cluster.scheduler.next_task_calls == []
    assert cluster.scheduler.shutdowns == [[]]


async def test_stop_during_a_poll_carrying_a_record(package_dir: Path) -> None:
    async with fake_cluster() as cluster, running_em(cluster, package_dir) as em:
        await _complete_one(cluster)
        await cluster.scheduler.wait_until(
            lambda: cluster.scheduler.polling == 1 and len(cluster.scheduler.next_task_calls) == 2
        )
        assert cluster.scheduler.next_task_calls[1] == (1, 3)
        await em.stop()
    # The poll carrying the record was cancelled, so Shutdown repeats the record.
    assert cluster.scheduler.shutdowns == [[(1, 3)]]
    assert cluster.scheduler.outstanding == set()
    assert len(cluster.storage.successes) == 1


async def test_stop_during_registration(package_dir: Path) -> None:
    async with fake_cluster() as cluster, running_em(cluster, package_dir) as em:
        await _complete_one(cluster)
        cluster.storage.block_register = True
        cluster.scheduler.push(scheduler_assignment(2))
        await cluster.storage.wait_until(lambda: len(cluster.storage.register_calls) == 2)
        await em.stop()
    assert cluster.scheduler.outstanding == {(2, 3)}
    assert len(cluster.storage.successes) == 1


async def test_stop_during_execution_within_the_grace(package_dir: Path, tmp_path: Path) -> None:
    gate = Gate.make(tmp_path)
    async with fake_cluster() as cluster, running_em(cluster, package_dir) as em:
        cluster.storage.register_replies.append(gate.context())
        cluster.scheduler.push(scheduler_assignment(1))
        await gate.wait_started()
        em.em_stop.request("SIGTERM (test)")
        await gate.open()
        await em.done.wait()
    (success,) = cluster.storage.successes
    assert outputs(success.outputs) == ["released"]
    assert cluster.scheduler.shutdowns == [[(1, 3)]]
    assert cluster.scheduler.outstanding == set()


async def test_stop_during_execution_past_the_grace(package_dir: Path, tmp_path: Path) -> None:
    gate = Gate.make(tmp_path)
    async with fake_cluster() as cluster, running_em(cluster, package_dir, grace=0.5) as em:
        cluster.storage.register_replies.append(gate.context())
        cluster.scheduler.push(scheduler_assignment(1))
        await gate.wait_started()
        await em.stop()
    (failure,) = cluster.storage.failures
    assert str(failure.message).splitlines()[0] == "killed at shutdown after the 0.5 s grace"
    assert cluster.scheduler.shutdowns == [[(1, 3)]]
    assert cluster.scheduler.outstanding == set()


async def test_stop_during_a_report(package_dir: Path) -> None:
    async with fake_cluster() as cluster, running_em(cluster, package_dir) as em:
        cluster.storage.block_reports = True
        cluster.storage.register_replies.append(execution_context("fibonacci", inputs(10)))
        cluster.scheduler.push(scheduler_assignment(1))
        await cluster.storage.wait_until(lambda: cluster.storage.report_attempts == 1)
        em.em_stop.request("SIGTERM (test)")
        # The blocked report call fails when storage restarts; the retry lands.
        cluster.storage.block_reports = False
        await cluster.restart_storage(new_session=False)
        await em.done.wait()
    (success,) = cluster.storage.successes
    assert outputs(success.outputs) == [55]
    assert cluster.scheduler.outstanding == set()


async def test_a_second_stop_during_a_hung_shutdown_rpc(package_dir: Path) -> None:
    async with fake_cluster() as cluster, running_em(cluster, package_dir, forced_bound=0.5) as em:
        await _complete_one(cluster)
        cluster.scheduler.block_shutdown = True
        em.em_stop.request("SIGTERM (test)")
        await cluster.scheduler.wait_until(lambda: len(cluster.scheduler.shutdowns) == 1)
        forced_at = trio.current_time()
        await em.stop()
        assert em.stopped_at is not None
        assert em.stopped_at - forced_at < 0.5 + 1.5  # the bound, plus closing the pool
    assert em.em_stop.forced
    assert cluster.scheduler.outstanding == set()
    assert len(cluster.storage.successes) == 1


@pytest.mark.parametrize("new_session", [False, True], ids=["same session", "new session"])
async def test_storage_restarting_during_a_registration(
    package_dir: Path, new_session: bool
) -> None:
    async with fake_cluster() as cluster, running_em(cluster, package_dir):
        cluster.storage.block_register = True
        cluster.scheduler.push(scheduler_assignment(1))
        await cluster.storage.wait_until(lambda: len(cluster.storage.register_calls) == 1)
        cluster.storage.block_register = False
        cluster.storage.register_replies.append(execution_context("fibonacci", inputs(10)))
        await cluster.restart_storage(new_session=new_session)
        if new_session:
            # The retry is rejected as stale (or dropped once a heartbeat saw session 6); the
            # next assignment, of the new session, runs.
            cluster.scheduler.push(scheduler_assignment(2, session=6))
        await cluster.storage.wait_until(lambda: len(cluster.storage.successes) == 1)
    assert cluster.scheduler.outstanding == set()
    (success,) = cluster.storage.successes
    assert success.session == (6 if new_session else 5)
    assert outputs(success.outputs) == [55]


@pytest.mark.parametrize("new_session", [False, True], ids=["same session", "new session"])
async def test_storage_restarting_during_a_report(package_dir: Path, new_session: bool) -> None:
    async with fake_cluster() as cluster, running_em(cluster, package_dir):
        cluster.storage.block_reports = True
        cluster.storage.register_replies.append(execution_context("fibonacci", inputs(10)))
        cluster.scheduler.push(scheduler_assignment(1))
        await cluster.storage.wait_until(lambda: cluster.storage.report_attempts == 1)
        cluster.storage.block_reports = False
        await cluster.restart_storage(new_session=new_session)
        if new_session:
            # A restarted storage forgot the instance: the outcome is dropped, not retried
            # forever; the EM goes on serving in the new session.
            await _complete_one_in_session(cluster, n=2, session=6)
        else:
            await cluster.storage.wait_until(lambda: len(cluster.storage.successes) == 1)
    assert cluster.scheduler.outstanding == set()
    sessions = [s.session for s in cluster.storage.successes]
    assert sessions == ([6] if new_session else [5])


async def _complete_one_in_session(cluster: Cluster, *, n: int, session: int) -> None:
    cluster.storage.register_replies.append(execution_context("fibonacci", inputs(10), instance=n))
    cluster.scheduler.push(scheduler_assignment(n, session=session))
    await cluster.storage.wait_until(lambda: len(cluster.storage.successes) == 1)
