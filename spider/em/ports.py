"""The EM runtime's view of its collaborators: storage, the scheduler and the process pool.

The runtime depends only on these Protocols. ``spider.em.clients`` implements the clients over
gRPC and ``spider.em.pool`` implements the pool with real executors; tests substitute in-process
fakes. Every client method raises ``spider.em.errors.EmClientError`` subclasses, never gRPC errors.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Protocol

import attrs

from spider.core.assignment import ConsumedAssignment
from spider.core.ids import ExecutionManagerId, SessionId, TaskInstanceId
from spider.em.assignment import (
    Assignment,
    ExecutionContext,
    Registration,
    ReportTarget,
    RevokedInstances,
)
from spider.em.errors import EmClientError
from spider.em.pool import TaskOutcome, TaskRequest


class LivenessClient(Protocol):
    """Storage's ``ExecutionManagerLivenessService``."""

    async def register(self, ip_address: str) -> Registration:
        """Register a new execution manager; storage answers with its id and the session."""
        ...

    async def heartbeat(self, em_id: ExecutionManagerId) -> SessionId:
        """Tell storage we are alive; it answers with its current session.

        Raises ``MarkedDead`` or ``IllegalId`` when this EM must stop, ``TransportError`` for
        anything else.
        """
        ...


class SchedulerClient(Protocol):
    """The scheduler's ``SchedulerService`` (and Spider-py's ``TaskDispatchService``)."""

    async def next_task(
        self, em_id: ExecutionManagerId, record: ConsumedAssignment | None, wait_ms: int
    ) -> Assignment | None:
        """One ``NextTask`` RPC: acknowledge ``record`` (if any) and wait up to ``wait_ms`` for
        an assignment; ``None`` when none came. The long-poll loop is the caller's."""
        ...

    async def next_tasks(
        self,
        em_id: ExecutionManagerId,
        records: Sequence[ConsumedAssignment],
        wait_ms: int,
        max_tasks: int,
    ) -> list[Assignment]:
        """One ``NextTasks`` RPC (Spider-py's extension): acknowledge every record, wait up to
        ``wait_ms`` for an assignment and return it with whatever else is ready, up to
        ``max_tasks``; empty when none came. ``ExtensionUnavailable`` from an upstream
        scheduler."""
        ...

    async def heartbeat(self, em_id: ExecutionManagerId) -> None:
        """Tell the scheduler we are alive (it reschedules the work of silent EMs)."""
        ...

    async def shutdown(
        self, em_id: ExecutionManagerId, records: Sequence[ConsumedAssignment]
    ) -> None:
        """Acknowledge ``records`` and have the scheduler reschedule whatever else it gave us."""
        ...


class StorageClient(Protocol):
    """Storage's ``TaskInstanceManagementService`` (and Spider-py's ``TaskInstanceBatchService``)."""

    async def register_task_instance(
        self, assignment: Assignment, em_id: ExecutionManagerId
    ) -> ExecutionContext:
        """Create a task instance for ``assignment`` (in the assignment's session)."""
        ...

    async def register_task_instances(
        self, assignments: Sequence[Assignment], em_id: ExecutionManagerId
    ) -> list[ExecutionContext | EmClientError]:
        """One ``RegisterTaskInstances`` RPC (Spider-py's extension): per assignment, its
        execution context or the error its single registration would have raised. The whole
        call raises ``ExtensionUnavailable`` from an upstream storage, or a ``EmClientError``
        when it got no answer at all."""
        ...

    async def report_success(self, target: ReportTarget, outputs: bytes) -> None:
        """Report that the instance succeeded with ``outputs`` (an output wire frame)."""
        ...

    async def report_failure(self, target: ReportTarget, message: str) -> None:
        """Report that the instance failed, with a readable ``message``."""
        ...

    async def report_outcomes(
        self, reports: Sequence[tuple[ReportTarget, TaskOutcome]]
    ) -> list[EmClientError | None]:
        """One ``ReportTaskOutcomes`` RPC (Spider-py's extension): each outcome as
        ``report_success`` or ``report_failure`` would send it. Per outcome, ``None`` when
        storage accepted it, else the error its single RPC would have raised. The whole call
        raises ``ExtensionUnavailable`` from an upstream storage, or a ``EmClientError`` when it
        got no answer at all."""
        ...


class RevocationClient(Protocol):
    """Storage's ``InstanceRevocationService`` (Spider-py's extension)."""

    async def wait_revoked_instances(
        self, em_id: ExecutionManagerId, session: SessionId, known_revision: int, wait_ms: int
    ) -> RevokedInstances:
        """One ``WaitRevokedInstances`` long poll: the instances of this EM storage revoked after
        ``known_revision`` of ``session`` (which it acknowledges), waiting up to ``wait_ms`` for
        one. ``ExtensionUnavailable`` from an upstream storage."""
        ...


@attrs.frozen
class EmClients:
    """The clients the runtime uses."""

    liveness: LivenessClient
    scheduler: SchedulerClient
    storage: StorageClient
    revocation: RevocationClient | None = None
    """Spider-py's revocation long poll; ``None``: instances storage drops run to their end."""


class TaskSlot(Protocol):
    """One place where a task runs at a time (``spider.em.pool.ExecutorSlot``)."""

    @property
    def index(self) -> int:
        """The slot's position in the pool, for logs."""
        ...

    @property
    def busy(self) -> bool:
        """Whether a task runs (or is being started) on the slot, for the metrics."""
        ...

    async def wait_ready(self) -> None:
        """Wait until the slot can start a task at once."""
        ...

    async def run(self, request: TaskRequest) -> TaskOutcome:
        """Run ``request``; every way a task ends is an outcome, never an exception."""
        ...


class TaskPool(Protocol):
    """The open process pool (``spider.em.pool.ProcessPool``)."""

    @property
    def slots(self) -> Sequence[TaskSlot]:
        """One per executor; the runtime runs one dispatch loop per slot."""
        ...

    def set_shutdown_deadline(self, deadline: float) -> None:
        """Kill tasks still running at ``deadline``; they end as ``TaskFailed(kind="shutdown")``."""
        ...

    def revoke(self, instance_ids: Iterable[TaskInstanceId]) -> list[TaskInstanceId]:
        """Kill the running tasks of ``instance_ids``; they end as ``TaskFailed(kind="revoked")``
        (never reported). Returns those that were running."""
        ...


PoolOpener = Callable[[], AbstractAsyncContextManager[TaskPool]]
"""Opens the pool for the block, e.g. ``functools.partial(open_process_pool, config)``."""
