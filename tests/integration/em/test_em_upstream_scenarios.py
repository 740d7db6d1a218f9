"""Upstream's 15 EM runtime scenarios over gRPC, with real executors.

The scenarios and the mocks are in docs/upstream.md#em-runtime-scenarios-and-mocks; fake scheduler
and storage servers reproduce the mocks. Most tests end with a graceful stop and check that the
scheduler has nothing outstanding: every assignment it handed out was acknowledged by a later
``NextTask`` or by ``Shutdown``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from spider import rpc
from spider.em.errors import ExecutorsUnavailable
from spider.em.runtime import RuntimeSettings

from .em_harness import SETTINGS, fake_cluster, inputs, outputs, running_em
from .fake_services import EM_ID, execution_context, scheduler_assignment, task_id_pb

SLOW_HEARTBEAT = RuntimeSettings(
    scheduler_poll_wait_ms=2000,
    storage_heartbeat_interval=5.0,
    scheduler_heartbeat_interval=5.0,
    retry=SETTINGS.retry,
)


async def test_1_registers_once_and_starts_heartbeats(package_dir: Path) -> None:
    async with fake_cluster() as cluster, running_em(cluster, package_dir):
        with trio.fail_after(2):
            await cluster.storage.wait_until(lambda: cluster.storage.heartbeats >= 1)
            await cluster.scheduler.wait_until(lambda: cluster.scheduler.heartbeats >= 1)
    assert cluster.storage.em_registrations == 1


async def test_2_an_executor_that_cannot_start_fails_the_em(
    package_dir: Path, tmp_path: Path
) -> None:
    async with (
        fake_cluster() as cluster,
        running_em(cluster, package_dir, bin_path=tmp_path / "no-such-executor") as em,
    ):
        await em.done.wait()
    assert isinstance(em.error, ExecutorsUnavailable)
    assert "no-such-executor" in str(em.error)


async def test_3_a_stop_request_returns_cleanly(package_dir: Path) -> None:
    async with fake_cluster() as cluster, running_em(cluster, package_dir) as em:
        await cluster.storage.wait_until(lambda: cluster.storage.heartbeats >= 1)
        with trio.fail_after(2):
            await em.stop()
    assert em.error is None
    assert cluster.scheduler.shutdowns == [[]]


async def test_4_a_scheduler_error_is_retried(package_dir: Path) -> None:
    async with fake_cluster() as cluster, running_em(cluster, package_dir):
        cluster.storage.register_replies.append(rpc.FailedPreconditionError("cache stale: gone"))
        cluster.scheduler.push(
            rpc.UnavailableError("scheduler restarting"), scheduler_assignment(1)
        )
        await cluster.storage.wait_until(lambda: len(cluster.storage.register_calls) == 1)
        await cluster.scheduler.wait_until(lambda: len(cluster.scheduler.next_task_calls) >= 3)
    assert cluster.scheduler.outstanding == set()


async def test_5_a_stale_assignment_is_dropped_without_registering(package_dir: Path) -> None:
    async with fake_cluster() as cluster:
        cluster.storage.session = 10
        async with running_em(cluster, package_dir):
            cluster.scheduler.push(scheduler_assignment(1, session=5))
            await cluster.scheduler.wait_until(lambda: len(cluster.scheduler.next_task_calls) >= 2)
    assert cluster.storage.register_calls == []
    assert cluster.scheduler.outstanding == set()


async def test_6_a_newer_assignment_refreshes_liveness(package_dir: Path) -> None:
    async with fake_cluster() as cluster, running_em(cluster, package_dir, settings=SLOW_HEARTBEAT):
        await cluster.storage.wait_until(lambda: cluster.storage.heartbeats == 1)
        await cluster.scheduler.wait_until(lambda: cluster.scheduler.polling == 1)
        cluster.storage.session = 10
        cluster.storage.register_replies.append(rpc.FailedPreconditionError("cache stale"))
        cluster.scheduler.push(scheduler_assignment(1, session=10))
        with trio.fail_after(0.5):
            await cluster.storage.wait_until(lambda: cluster.storage.heartbeats == 2)
        # The record reaches the scheduler on the poll after the registration was answered;
        # stopping any earlier would interrupt the registration and leave it unacknowledged.
        await cluster.scheduler.wait_until(lambda: len(cluster.scheduler.next_task_calls) >= 2)
    assert len(cluster.storage.register_calls) == 1
    assert cluster.storage.register_calls[0].session_id == 10
    assert cluster.scheduler.outstanding == set()


async def test_7_an_equal_session_goes_to_registration(package_dir: Path) -> None:
    async with fake_cluster() as cluster, running_em(cluster, package_dir):
        cluster.storage.register_replies.append(rpc.FailedPreconditionError("cache stale"))
        cluster.scheduler.push(scheduler_assignment(1, session=5))
        await cluster.storage.wait_until(lambda: len(cluster.storage.register_calls) == 1)
    (call,) = cluster.storage.register_calls
    assert (call.session_id, call.execution_manager_id, call.job_id) == (5, EM_ID, 42)


async def test_8_a_stale_session_rejection_drops_and_refreshes(package_dir: Path) -> None:
    async with fake_cluster() as cluster, running_em(cluster, package_dir, settings=SLOW_HEARTBEAT):
        await cluster.storage.wait_until(lambda: cluster.storage.heartbeats == 1)
        cluster.storage.register_replies.append(rpc.NotFoundError("stale session"))
        cluster.scheduler.push(scheduler_assignment(1))
        with trio.fail_after(0.5):
            await cluster.storage.wait_until(lambda: cluster.storage.heartbeats == 2)
        await cluster.scheduler.wait_until(lambda: len(cluster.scheduler.next_task_calls) >= 2)
    assert len(cluster.storage.register_calls) == 1
    assert cluster.storage.reports == []
    assert cluster.scheduler.outstanding == set()


async def test_9_recoverable_storage_errors_drop_the_assignment(package_dir: Path) -> None:
    async with fake_cluster() as cluster, running_em(cluster, package_dir):
        cluster.storage.register_replies.extend(
            [rpc.FailedPreconditionError("cache stale"), rpc.NotFoundError("stale session")]
        )
        cluster.scheduler.push(scheduler_assignment(1), scheduler_assignment(2))
        await cluster.scheduler.wait_until(lambda: len(cluster.scheduler.next_task_calls) >= 3)
    assert len(cluster.storage.register_calls) == 2
    assert cluster.storage.reports == []
    assert cluster.scheduler.outstanding == set()


async def test_10_a_success_reports_its_outputs(package_dir: Path) -> None:
    async with fake_cluster() as cluster, running_em(cluster, package_dir):
        cluster.storage.register_replies.append(execution_context("fibonacci", inputs(10)))
        cluster.scheduler.push(scheduler_assignment(1))
        await cluster.storage.wait_until(lambda: len(cluster.storage.successes) == 1)
    (success,) = cluster.storage.successes
    assert (success.job_id, success.task_id, success.task_instance_id) == (42, task_id_pb(0), 1)
    assert (success.em_id, success.session) == (EM_ID, 5)
    assert outputs(success.outputs) == [55]
    assert cluster.storage.failures == []
    assert cluster.scheduler.outstanding == set()


async def test_11_a_failure_keeps_the_loop_serving(package_dir: Path) -> None:
    async with fake_cluster() as cluster, running_em(cluster, package_dir):
        cluster.storage.register_replies.extend(
            [
                execution_context("always_fail", instance=1),
                execution_context("fibonacci", inputs(7), instance=2),
            ]
        )
        cluster.scheduler.push(scheduler_assignment(1), scheduler_assignment(2))
        await cluster.storage.wait_until(lambda: len(cluster.storage.reports) == 2)
    (failure,) = cluster.storage.failures
    first, task, *traceback = str(failure.message).splitlines()
    assert first == "in-task failure: ValueError: always_fail: intentional failure"
    assert task.startswith("task 0 (integration_test_tasks::always_fail) of job ")
    # The task's own traceback follows, ending with its exception.
    assert traceback[0] == "Traceback (most recent call last):"
    assert traceback[-1] == "ValueError: always_fail: intentional failure"
    (success,) = cluster.storage.successes
    assert outputs(success.outputs) == [13]
    assert cluster.scheduler.outstanding == set()


async def test_12_a_report_error_does_not_kill_the_runtime(package_dir: Path) -> None:
    async with fake_cluster() as cluster, running_em(cluster, package_dir):
        cluster.storage.report_replies.append(rpc.InternalError("storage service internal error"))
        cluster.storage.register_replies.extend(
            [
                execution_context("fibonacci", inputs(5), instance=1),
                execution_context("fibonacci", inputs(6), instance=2),
            ]
        )
        cluster.scheduler.push(scheduler_assignment(1), scheduler_assignment(2))
        await cluster.storage.wait_until(lambda: len(cluster.storage.successes) == 2)
    # Upstream drops the failed report; this EM retries it, so both outcomes land.
    assert sorted(outputs(s.outputs)[0] for s in cluster.storage.successes) == [5, 8]
    assert cluster.storage.report_attempts == 3


async def test_13_cancelling_the_runtime_stops_every_heartbeat(package_dir: Path) -> None:
    """Upstream drops the ``run()`` future; here the caller cancels its scope. Nothing is
    detached, so no heartbeat outlives it."""
    async with fake_cluster() as cluster:
        with trio.move_on_after(30) as outer:
            async with running_em(cluster, package_dir):
                await cluster.storage.wait_until(lambda: cluster.storage.heartbeats >= 2)
                await cluster.scheduler.wait_until(lambda: cluster.scheduler.polling == 1)
                outer.cancel(reason="the caller went away")
        assert outer.cancelled_caught
        storage_beats, scheduler_beats = cluster.storage.heartbeats, cluster.scheduler.heartbeats
        await trio.sleep(0.5)  # five heartbeat periods: anything still running would show
        assert (cluster.storage.heartbeats, cluster.scheduler.heartbeats) == (
            storage_beats,
            scheduler_beats,
        )


async def test_14_liveness_and_scheduler_heartbeats_keep_pace(package_dir: Path) -> None:
    """Over real sockets the liveness period starts after each answer, so the two counts may
    differ by one; the exact lockstep is tested on the mock clock (unit tests)."""
    async with fake_cluster() as cluster, running_em(cluster, package_dir):
        await cluster.storage.wait_until(lambda: cluster.storage.heartbeats >= 1)
        await trio.sleep(0.35)
        storage_beats, scheduler_beats = cluster.storage.heartbeats, cluster.scheduler.heartbeats
    assert storage_beats >= 2
    assert scheduler_beats >= 2
    assert abs(storage_beats - scheduler_beats) <= 1


async def test_15_a_stop_during_registration_leaves_that_assignment_unacknowledged(
    package_dir: Path,
) -> None:
    async with fake_cluster() as cluster, running_em(cluster, package_dir) as em:
        cluster.storage.block_register = True
        cluster.scheduler.push(scheduler_assignment(1))
        await cluster.storage.wait_until(lambda: len(cluster.storage.register_calls) == 1)
        with trio.fail_after(2):
            await em.stop()
    assert em.error is None
    assert cluster.scheduler.outstanding == {(1, 3)}
    assert cluster.scheduler.shutdowns == [[]]


@pytest.mark.parametrize("kind", ["commit", "cleanup"])
async def test_termination_tasks_are_routed_with_an_empty_input_frame(
    package_dir: Path, kind: str
) -> None:
    from spider.core import encode_task_outputs

    async with fake_cluster() as cluster, running_em(cluster, package_dir):
        if kind == "commit":
            job_outputs = encode_task_outputs([b"\x03", b"\xff", b"\xfe"])  # 3, -1, -2
            context = execution_context("assert_outputs_sum_zero", job_outputs)
        else:
            context = execution_context("cleanup_marker", b"")  # what storage sends
        cluster.storage.register_replies.append(context)
        cluster.scheduler.push(scheduler_assignment(1, task_id=task_id_pb(kind=kind)))
        await cluster.storage.wait_until(lambda: len(cluster.storage.reports) == 1)
    assert cluster.storage.failures == []
    (success,) = cluster.storage.successes
    assert success.task_id == task_id_pb(kind=kind)
    assert outputs(success.outputs) == []
