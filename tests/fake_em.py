"""The tests' fake execution manager: Spider's EM protocol over ``spider.rpc``, tasks run in-process.

It takes work one of two ways:

* from storage's ready lanes (``run_until``, ``serve``), playing the scheduler too, for tests of
  storage and the client;
* from a scheduler (``run_one``, ``shutdown``), with the scheduler's real client protocol: each
  ``NextTask`` acknowledges the previous assignment.

Either way it registers the task instance with storage, asks its ``TaskRunner`` for the outputs
and reports them. A runner that raises ``TaskExecutionError`` makes the task fail with the
error's text, as the real EM reports it. Two runners: the real ``@task`` functions
(``tdl_runner``) and outputs computed from the job's graph (``graph_runner``).

The storage suites' ``GrpcEm`` (``tests/integration/storage_service/grpc_client.py``) is not this
class on purpose: it drives storage with grpcio's stubs of Spider's protos, which is what proves
a cluster driven by upstream's clients works.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NoReturn

import attrs

from spider.core import JobId, ResourceGroupId, TaskContext, TaskId, TaskInstanceId
from spider.core.task_graph import TaskGraph
from spider.core.wire import decode_frame, encode_frame
from spider.proto import common
from spider.proto import scheduler as scheduler_pb
from spider.proto import storage as storage_pb
from spider.rpc import Channel
from spider.tdl import TaskExecutionError, definition_of
from tests.unit.storage.jobs import pack, task_result, unpack

TERMINAL_STATES = (
    storage_pb.JobState.SUCCEEDED,
    storage_pb.JobState.FAILED,
    storage_pb.JobState.CANCELLED,
)


@attrs.frozen
class Work:
    """A task to run, as a lane entry or an assignment names it."""

    job_id: int
    task_id: common.TaskId
    resource_group_id: int
    session_id: int
    assignment_id: int | None = None
    """The scheduler's assignment id; ``None`` for work taken from storage's lanes."""


@attrs.frozen
class RanTask:
    """A task the fake EM ran (and reported)."""

    job_id: int
    task_func: str
    assignment_id: int | None


TaskRunner = Callable[[Work, storage_pb.ExecutionContext], bytes]
"""The serialized outputs of ``work`` given its execution context; raises
``TaskExecutionError`` for a task that fails."""


def tdl_runner(tasks: dict[str, Callable[..., Any]]) -> TaskRunner:
    """Run the real ``@task`` function the context names (``package::name`` keys)."""

    def run(work: Work, context: storage_pb.ExecutionContext) -> bytes:
        raw_context = TaskContext(
            JobId(work.job_id),
            TaskId.index(work.task_id.index),
            TaskInstanceId(context.task_instance_id),
            ResourceGroupId(work.resource_group_id),
        ).encode()
        function = tasks[context.tdl_context.task_func]
        return definition_of(function).execute(raw_context, context.serialized_task_io)

    return run


def graph_runner(graphs: dict[int, TaskGraph]) -> TaskRunner:
    """Compute each task's outputs from its job's graph, looked up in ``graphs`` by job id when
    the task runs (so jobs may be added after the fake EM is made)."""

    def run(work: Work, context: storage_pb.ExecutionContext) -> bytes:
        return graph_outputs(graphs[work.job_id], work.task_id, context.serialized_task_io)

    return run


def graph_outputs(graph: TaskGraph, task_id: common.TaskId, serialized_task_io: bytes) -> bytes:
    """The serialized outputs of ``task_id`` in ``graph`` (``task_result`` of its inputs); the
    commit and cleanup tasks return nothing."""
    if task_id.WhichOneof("kind") != "index":
        return b""
    inputs = [unpack(payload) for payload in decode_frame(serialized_task_io)]
    num_outputs = len(graph.task(task_id.index).outputs)
    outputs = task_result(task_id.index, inputs, num_outputs)
    return encode_frame([pack(value) for value in outputs])


@attrs.define(eq=False)
class FakeEm:
    """Registers with storage, then runs work; see the module docstring."""

    storage: Channel
    runner: TaskRunner
    scheduler: Channel | None = None
    """Where ``run_one`` takes assignments from; not needed for the lanes."""
    em_id: int = 0
    session_id: int = 0
    ack: scheduler_pb.TaskAssignmentRecord | None = None
    """The last assignment taken from the scheduler, acknowledged by the next ``NextTask``."""
    ran: list[RanTask] = attrs.field(factory=list)

    async def register(self) -> None:
        reply = await self.storage.call(
            storage_pb.ExecutionManagerLivenessServiceStub.register_execution_manager,
            storage_pb.RegisterExecutionManagerRequest(ip_address="127.0.0.1"),
        )
        self.em_id = reply.registration.execution_manager_id
        self.session_id = reply.registration.session_id

    # --- work from storage's lanes -------------------------------------------------------------

    async def run_until(self, job_id: int) -> None:
        """Run ready tasks until ``job_id`` is terminal."""
        while True:
            state = await self.storage.call(
                storage_pb.JobOrchestrationServiceStub.get_job_state,
                storage_pb.JobIdRequest(job_id=job_id),
            )
            if state.state in TERMINAL_STATES:
                return
            await self._run_ready()

    async def serve(self) -> NoReturn:
        """Run every ready task of every job, until cancelled."""
        while True:
            await self._run_ready()

    async def _run_ready(self) -> None:
        batch = await self.storage.call(
            storage_pb.InboundQueueServiceStub.poll_ready_tasks,
            storage_pb.PollReadyTasksRequest(max_items=64, wait_ms=200),
        )
        for ready in batch.tasks.tasks:
            await self.run(
                Work(ready.job_id, ready.task_id, ready.resource_group_id, self.session_id)
            )

    # --- work from a scheduler -----------------------------------------------------------------

    async def run_one(self, wait_ms: int = 1000) -> bool:
        """One ``NextTask`` (acknowledging the previous assignment); False for no task."""
        assert self.scheduler is not None, "run_one takes work from a scheduler: pass one"
        request = scheduler_pb.NextTaskRequest(
            execution_manager_id=self.em_id, wait_time_ms=wait_ms
        )
        if self.ack is not None:
            request.prev_assignment.CopyFrom(self.ack)
        reply = await self.scheduler.call(
            scheduler_pb.SchedulerServiceStub.next_task, request, deadline=wait_ms / 1000 + 5
        )
        self.ack = None
        if reply.WhichOneof("result") != "assignment":
            return False
        assignment = reply.assignment
        self.ack = scheduler_pb.TaskAssignmentRecord(
            id=assignment.id, **{"from": assignment.scheduler_id}
        )
        await self.run(
            Work(
                assignment.job_id,
                assignment.task_id,
                assignment.resource_group_id,
                assignment.session_id,
                assignment.id,
            )
        )
        return True

    async def shutdown(self) -> None:
        """``Shutdown``, handing back the unacknowledged assignment, if any."""
        assert self.scheduler is not None, "shutdown talks to a scheduler: pass one"
        records = [self.ack] if self.ack is not None else []
        await self.scheduler.call(
            scheduler_pb.SchedulerServiceStub.shutdown,
            scheduler_pb.ShutdownRequest(execution_manager_id=self.em_id, prev_assignments=records),
        )
        self.ack = None

    # --- one task ------------------------------------------------------------------------------

    async def run(self, work: Work) -> None:
        """Register ``work``'s instance, run it and report the outcome."""
        reply = await self.storage.call(
            storage_pb.TaskInstanceManagementServiceStub.register_task_instance,
            storage_pb.RegisterTaskInstanceRequest(
                job_id=work.job_id,
                task_id=work.task_id,
                execution_manager_id=self.em_id,
                session_id=work.session_id,
            ),
        )
        context = reply.execution_context
        try:
            outputs = self.runner(work, context)
        except TaskExecutionError as error:
            await self.storage.call(
                storage_pb.TaskInstanceManagementServiceStub.report_task_failure,
                storage_pb.ReportTaskFailureRequest(
                    job_id=work.job_id,
                    task_id=work.task_id,
                    task_instance_id=context.task_instance_id,
                    execution_manager_id=self.em_id,
                    session_id=work.session_id,
                    error_message=str(error),
                ),
            )
        else:
            await self.storage.call(
                storage_pb.TaskInstanceManagementServiceStub.report_task_success,
                storage_pb.ReportTaskSuccessRequest(
                    job_id=work.job_id,
                    task_id=work.task_id,
                    task_instance_id=context.task_instance_id,
                    execution_manager_id=self.em_id,
                    session_id=work.session_id,
                    serialized_outputs=outputs,
                ),
            )
        self.ran.append(RanTask(work.job_id, context.tdl_context.task_func, work.assignment_id))
