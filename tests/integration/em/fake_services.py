"""Fake storage and scheduler gRPC services in Trio, after upstream's mocks.

The mocks are described in docs/upstream.md#em-runtime-scenarios-and-mocks.

The scheduler hands out queued assignments (or errors), blocking each ``NextTask`` for up to its
wait, and tracks the assignments it handed out until a later ``NextTask`` or ``Shutdown``
acknowledges them. Storage registers the EM, answers heartbeats with its session, answers task
registrations from a queue (or blocks them), and records every report. Both keep their state
across a server restart, like a real service's database; ``restart`` may bump the session.
Spider-py's execution extension (``NextTasks``, ``ReportTaskOutcomes``) is served over the same
state when the cluster is built with it; without it the EM meets what an upstream Spider
cluster answers (the methods are not served).
"""

from __future__ import annotations

import collections
from typing import Any

import attrs
import trio
from trio_util import RepeatedEvent

from spider import rpc
from spider.proto import common
from spider.proto import scheduler as scheduler_pb
from spider.proto import storage as storage_pb
from spider.proto.spider_py import execution as execution_pb
from tests.unit.em.fakes import Watchable

EM_ID = 77
SCHEDULER_ID = 3
LOOPBACK = "127.0.0.1"


def record_key(record: scheduler_pb.TaskAssignmentRecord) -> tuple[int, int]:
    from_scheduler: int = getattr(record, "from")
    return (record.id, from_scheduler)


def task_id_pb(index: int | None = 0, *, kind: str = "index") -> common.TaskId:
    if kind == "commit":
        return common.TaskId(commit=common.Void())
    if kind == "cleanup":
        return common.TaskId(cleanup=common.Void())
    return common.TaskId(index=index or 0)


def scheduler_assignment(
    n: int, *, session: int = 5, job_id: int = 42, task_id: common.TaskId | None = None
) -> scheduler_pb.SchedulerAssignment:
    return scheduler_pb.SchedulerAssignment(
        id=n,
        resource_group_id=7,
        job_id=job_id,
        task_id=task_id if task_id is not None else task_id_pb(0),
        scheduler_id=SCHEDULER_ID,
        session_id=session,
    )


@attrs.define(eq=False)
class SchedulerState(Watchable):
    """What the fake scheduler knows and saw."""

    responses: collections.deque[scheduler_pb.SchedulerAssignment | rpc.RpcError] = attrs.field(
        factory=collections.deque
    )
    outstanding: set[tuple[int, int]] = attrs.field(factory=set)
    next_task_calls: list[tuple[int, int] | None] = attrs.field(factory=list)
    polling: int = 0
    heartbeats: int = 0
    shutdowns: list[list[tuple[int, int]]] = attrs.field(factory=list)
    acknowledged_together: list[list[tuple[int, int]]] = attrs.field(factory=list)
    """The records of each ``NextTasks``."""
    block_shutdown: bool = False
    _pushed: RepeatedEvent = attrs.field(factory=RepeatedEvent)

    def __attrs_post_init__(self) -> None:
        Watchable.__init__(self)

    def push(self, *items: scheduler_pb.SchedulerAssignment | rpc.RpcError) -> None:
        self.responses.extend(items)
        self._pushed.set()


class FakeSchedulerService(scheduler_pb.SchedulerServiceBase):
    def __init__(self, state: SchedulerState) -> None:
        self.state = state

    async def next_task(
        self, next_task_request: scheduler_pb.NextTaskRequest
    ) -> scheduler_pb.NextTaskResponse:
        state = self.state
        assert next_task_request.execution_manager_id == EM_ID
        key = (
            record_key(next_task_request.prev_assignment)
            if next_task_request.HasField("prev_assignment")
            else None
        )
        if key is not None:
            state.outstanding.discard(key)
        state.next_task_calls.append(key)
        state.polling += 1
        state.notify()
        try:
            with trio.move_on_after(next_task_request.wait_time_ms / 1000):
                while not state.responses:
                    await state._pushed.wait()
            if not state.responses:
                return scheduler_pb.NextTaskResponse(no_task=common.Void())
            response = state.responses.popleft()
            if isinstance(response, rpc.RpcError):
                raise response
            state.outstanding.add((response.id, response.scheduler_id))
            return scheduler_pb.NextTaskResponse(assignment=response)
        finally:
            state.polling -= 1
            state.notify()

    async def heartbeat(self, heartbeat_request: scheduler_pb.HeartbeatRequest) -> common.Void:
        await trio.lowlevel.checkpoint()
        self.state.heartbeats += 1
        self.state.notify()
        return common.Void()

    async def shutdown(self, shutdown_request: scheduler_pb.ShutdownRequest) -> common.Void:
        await trio.lowlevel.checkpoint()
        records = [record_key(r) for r in shutdown_request.prev_assignments]
        for key in records:
            self.state.outstanding.discard(key)
        self.state.shutdowns.append(records)
        self.state.notify()
        if self.state.block_shutdown:
            await trio.sleep_forever()
        return common.Void()


def execution_context(
    task_func: str,
    task_io: bytes = b"\x00\x00\x00\x00",
    *,
    package: str = "integration_test_tasks",
    instance: int = 1,
    hard_timeout_ms: int = 60_000,
) -> storage_pb.ExecutionContext:
    return storage_pb.ExecutionContext(
        task_instance_id=instance,
        tdl_context=storage_pb.TdlContext(package=package, task_func=task_func),
        timeout_policy=storage_pb.TimeoutPolicy(
            soft_timeout_ms=1000, hard_timeout_ms=hard_timeout_ms
        ),
        serialized_task_io=task_io,
    )


@attrs.define(eq=False)
class Report:
    job_id: int
    task_id: common.TaskId
    task_instance_id: int
    em_id: int
    session: int
    outputs: bytes | None = None
    message: str | None = None


@attrs.define(eq=False)
class StorageState(Watchable):
    """What the fake storage knows and saw."""

    session: int = 5
    em_registrations: int = 0
    heartbeats: int = 0
    heartbeat_error: rpc.RpcError | None = None
    register_replies: collections.deque[storage_pb.ExecutionContext | rpc.RpcError] = attrs.field(
        factory=collections.deque
    )
    register_calls: list[storage_pb.RegisterTaskInstanceRequest] = attrs.field(factory=list)
    block_register: bool = False
    report_replies: collections.deque[rpc.RpcError] = attrs.field(factory=collections.deque)
    report_attempts: int = 0
    block_reports: bool = False
    successes: list[Report] = attrs.field(factory=list)
    failures: list[Report] = attrs.field(factory=list)
    report_batches: list[int] = attrs.field(factory=list)
    """Outcomes per ``ReportTaskOutcomes``."""

    def __attrs_post_init__(self) -> None:
        Watchable.__init__(self)

    @property
    def reports(self) -> list[Report]:
        return self.successes + self.failures


class FakeLivenessService(storage_pb.ExecutionManagerLivenessServiceBase):
    def __init__(self, state: StorageState) -> None:
        self.state = state

    async def register_execution_manager(
        self, register_execution_manager_request: storage_pb.RegisterExecutionManagerRequest
    ) -> storage_pb.RegisterExecutionManagerResponse:
        await trio.lowlevel.checkpoint()
        self.state.em_registrations += 1
        self.state.notify()
        return storage_pb.RegisterExecutionManagerResponse(
            registration=storage_pb.ExecutionManagerRegistration(
                execution_manager_id=EM_ID, session_id=self.state.session
            )
        )

    async def update_execution_manager_heartbeat(
        self, execution_manager_id_request: storage_pb.ExecutionManagerIdRequest
    ) -> storage_pb.UpdateExecutionManagerHeartbeatResponse:
        await trio.lowlevel.checkpoint()
        if execution_manager_id_request.execution_manager_id != EM_ID:
            raise rpc.InvalidArgumentError("unknown execution manager id")
        self.state.heartbeats += 1
        self.state.notify()
        if self.state.heartbeat_error is not None:
            raise self.state.heartbeat_error
        return storage_pb.UpdateExecutionManagerHeartbeatResponse(session_id=self.state.session)


class FakeTaskInstanceService(storage_pb.TaskInstanceManagementServiceBase):
    def __init__(self, state: StorageState) -> None:
        self.state = state

    async def register_task_instance(
        self, register_task_instance_request: storage_pb.RegisterTaskInstanceRequest
    ) -> storage_pb.RegisterTaskInstanceResponse:
        state = self.state
        await trio.lowlevel.checkpoint()
        state.register_calls.append(register_task_instance_request)
        state.notify()
        if state.block_register:
            await trio.sleep_forever()
        if register_task_instance_request.session_id != state.session:
            raise rpc.NotFoundError(f"stale session; current storage session is {state.session}")
        if not state.register_replies:
            raise rpc.InternalError("FakeStorage: no register reply queued")
        reply = state.register_replies.popleft()
        if isinstance(reply, rpc.RpcError):
            raise reply
        return storage_pb.RegisterTaskInstanceResponse(execution_context=reply)

    async def _report(self, request: Any) -> None:
        state = self.state
        await trio.lowlevel.checkpoint()
        state.report_attempts += 1
        state.notify()
        if state.block_reports:
            await trio.sleep_forever()
        if request.session_id != state.session:
            raise rpc.NotFoundError(f"stale session; current storage session is {state.session}")
        if state.report_replies:
            raise state.report_replies.popleft()

    async def report_task_success(
        self, report_task_success_request: storage_pb.ReportTaskSuccessRequest
    ) -> common.Void:
        request = report_task_success_request
        await self._report(request)
        self.state.successes.append(
            Report(
                request.job_id,
                request.task_id,
                request.task_instance_id,
                request.execution_manager_id,
                request.session_id,
                outputs=request.serialized_outputs,
            )
        )
        self.state.notify()
        return common.Void()

    async def report_task_failure(
        self, report_task_failure_request: storage_pb.ReportTaskFailureRequest
    ) -> common.Void:
        request = report_task_failure_request
        await self._report(request)
        self.state.failures.append(
            Report(
                request.job_id,
                request.task_id,
                request.task_instance_id,
                request.execution_manager_id,
                request.session_id,
                message=request.error_message,
            )
        )
        self.state.notify()
        return common.Void()


class FakeDispatchService(execution_pb.TaskDispatchServiceBase):
    """Spider-py's ``NextTasks`` over the same state as ``FakeSchedulerService``."""

    def __init__(self, state: SchedulerState) -> None:
        self.state = state

    async def next_tasks(
        self, next_tasks_request: execution_pb.NextTasksRequest
    ) -> execution_pb.NextTasksResponse:
        state = self.state
        request = next_tasks_request
        assert request.execution_manager_id == EM_ID
        keys = [record_key(record) for record in request.prev_assignments]
        for key in keys:
            state.outstanding.discard(key)
        # As NextTask would have carried the first of them.
        state.next_task_calls.append(keys[0] if keys else None)
        state.acknowledged_together.append(keys)
        state.polling += 1
        state.notify()
        try:
            with trio.move_on_after(request.wait_time_ms / 1000):
                while not state.responses:
                    await state._pushed.wait()
            taken: list[scheduler_pb.SchedulerAssignment] = []
            while state.responses and len(taken) < max(request.max_tasks, 1):
                head = state.responses[0]
                if isinstance(head, rpc.RpcError):
                    if not taken:
                        state.responses.popleft()
                        raise head
                    break
                state.responses.popleft()
                state.outstanding.add((head.id, head.scheduler_id))
                taken.append(head)
            return execution_pb.NextTasksResponse(assignments=taken)
        finally:
            state.polling -= 1
            state.notify()


class FakeTaskInstanceBatchService(execution_pb.TaskInstanceBatchServiceBase):
    """Spider-py's batch service over ``FakeTaskInstanceService``'s handlers."""

    def __init__(self, single: FakeTaskInstanceService) -> None:
        self.single = single

    async def register_task_instances(
        self, register_task_instances_request: execution_pb.RegisterTaskInstancesRequest
    ) -> execution_pb.RegisterTaskInstancesResponse:
        results = []
        for request in register_task_instances_request.registrations:
            try:
                reply = await self.single.register_task_instance(request)
            except rpc.RpcError as error:
                results.append(
                    execution_pb.RegistrationResult(
                        error=execution_pb.ItemStatus(
                            code=error.status.value, message=error.message
                        )
                    )
                )
            else:
                results.append(
                    execution_pb.RegistrationResult(execution_context=reply.execution_context)
                )
        return execution_pb.RegisterTaskInstancesResponse(results=results)

    async def report_task_outcomes(
        self, report_task_outcomes_request: execution_pb.ReportTaskOutcomesRequest
    ) -> execution_pb.ReportTaskOutcomesResponse:
        self.single.state.report_batches.append(len(report_task_outcomes_request.outcomes))
        statuses = []
        for outcome in report_task_outcomes_request.outcomes:
            which = outcome.WhichOneof("outcome")
            try:
                if which == "success":
                    await self.single.report_task_success(outcome.success)
                else:
                    assert which == "failure", which
                    await self.single.report_task_failure(outcome.failure)
            except rpc.RpcError as error:
                statuses.append(
                    execution_pb.ItemStatus(code=error.status.value, message=error.message)
                )
            else:
                statuses.append(execution_pb.ItemStatus())
        return execution_pb.ReportTaskOutcomesResponse(statuses=statuses)


@attrs.define(eq=False)
class RestartableServer:
    """Serves some services on one port; ``stop`` and ``start`` again on the same port."""

    services: list[rpc.ServiceBase]
    nursery: trio.Nursery
    port: int = 0
    _scope: trio.CancelScope | None = None
    _stopped: trio.Event | None = None

    async def start(self) -> None:
        self.port = await self.nursery.start(self._serve)

    async def _serve(self, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        stopped = self._stopped = trio.Event()
        try:
            with trio.CancelScope() as self._scope:
                await rpc.serve(self.services, LOOPBACK, self.port, task_status=task_status)
        finally:
            stopped.set()

    async def stop(self) -> None:
        assert self._scope is not None
        assert self._stopped is not None
        self._scope.cancel(reason="the test stops this server")
        await self._stopped.wait()
