"""In-process fakes of the EM runtime's collaborators: storage, the scheduler and the pool.

They reproduce upstream's mocks (docs/upstream.md#em-runtime-scenarios-and-mocks): the scheduler
hands out queued responses and blocks (up to the poll wait) when there are none, tracks outstanding
assignments and removes them when acknowledged; storage answers queued register results, records
every call, and can block registrations or reports. Tests wait for state changes with ``wait_until``
instead of sleeping.
"""

from __future__ import annotations

import collections
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager

import attrs
import trio
from trio_util import RepeatedEvent

from spider.core import TaskId
from spider.core.assignment import ConsumedAssignment
from spider.core.ids import (
    AssignmentId,
    ExecutionManagerId,
    JobId,
    ResourceGroupId,
    SchedulerId,
    SessionId,
    TaskInstanceId,
)
from spider.em.assignment import (
    Assignment,
    ExecutionContext,
    Registration,
    ReportTarget,
    RevokedInstances,
)
from spider.em.errors import EmClientError, ExtensionUnavailable, MarkedDead, TransportError
from spider.em.pool import PoolFailureKind, TaskFailed, TaskOutcome, TaskRequest, TaskSucceeded
from spider.em.ports import EmClients

EM_ID = ExecutionManagerId(77)
SCHEDULER_ID = SchedulerId(3)


class Watchable:
    """State that tests can wait on: every change wakes the waiters."""

    def __init__(self) -> None:
        self._changed = RepeatedEvent()

    def notify(self) -> None:
        self._changed.set()

    async def wait_until(self, predicate: Callable[[], bool]) -> None:
        while not predicate():
            await self._changed.wait()


def assignment(
    n: int, *, session: int = 5, task_id: TaskId | None = None, job_id: int = 42
) -> Assignment:
    return Assignment(
        id=AssignmentId(n),
        scheduler_id=SCHEDULER_ID,
        job_id=JobId(job_id),
        task_id=task_id if task_id is not None else TaskId.index(0),
        resource_group_id=ResourceGroupId(7),
        session=SessionId(session),
    )


def context(
    task_func: str = "echo",
    *,
    instance: int = 1,
    hard_timeout_ms: int = 5000,
    task_io: bytes = b"\x00\x00\x00\x00",
) -> ExecutionContext:
    return ExecutionContext(
        task_instance_id=TaskInstanceId(instance),
        package="fake_package",
        task_func=task_func,
        soft_timeout_ms=1000,
        hard_timeout_ms=hard_timeout_ms,
        serialized_task_io=task_io,
    )


@attrs.define(eq=False)
class FakeScheduler(Watchable):
    """``SchedulerClient``: queued responses, outstanding assignments, call counts."""

    responses: collections.deque[Assignment | EmClientError] = attrs.field(
        factory=collections.deque
    )
    outstanding: list[ConsumedAssignment] = attrs.field(factory=list)
    next_task_calls: list[ConsumedAssignment | None] = attrs.field(factory=list)
    next_task_times: list[float] = attrs.field(factory=list)
    heartbeat_times: list[float] = attrs.field(factory=list)
    shutdown_calls: list[list[ConsumedAssignment]] = attrs.field(factory=list)
    heartbeat_error: EmClientError | None = None
    shutdown_errors: collections.deque[EmClientError] = attrs.field(factory=collections.deque)
    block_shutdown: bool = False
    extension: bool = False
    """Serve ``NextTasks``; an upstream scheduler (the default) answers UNIMPLEMENTED."""
    next_tasks_calls: list[tuple[list[ConsumedAssignment], int]] = attrs.field(factory=list)
    """``(records, max_tasks)`` of each ``NextTasks``."""
    refused: int = 0
    """``NextTasks`` calls answered UNIMPLEMENTED."""
    polling: int = 0
    em_ids: list[ExecutionManagerId] = attrs.field(factory=list)
    """The EM id of each ``NextTask`` / ``NextTasks``, ``Heartbeat`` and ``Shutdown``, in order."""
    shutdown_ems: list[ExecutionManagerId] = attrs.field(factory=list)
    _pushed: RepeatedEvent = attrs.field(factory=RepeatedEvent)

    def __attrs_post_init__(self) -> None:
        Watchable.__init__(self)

    def push(self, *items: Assignment | EmClientError) -> None:
        self.responses.extend(items)
        self._pushed.set()

    async def next_task(
        self, em_id: ExecutionManagerId, record: ConsumedAssignment | None, wait_ms: int
    ) -> Assignment | None:
        self.em_ids.append(em_id)
        if record is not None and record in self.outstanding:
            self.outstanding.remove(record)
        self.next_task_calls.append(record)
        self.next_task_times.append(trio.current_time())
        self.polling += 1
        self.notify()
        try:
            with trio.move_on_after(wait_ms / 1000 if wait_ms else 0):
                while not self.responses:
                    await self._pushed.wait()
            if not self.responses:
                await trio.lowlevel.checkpoint()
                return None
            response = self.responses.popleft()
            if isinstance(response, EmClientError):
                raise response
            self.outstanding.append(response.record)
            return response
        finally:
            self.polling -= 1
            self.notify()

    async def next_tasks(
        self,
        em_id: ExecutionManagerId,
        records: Sequence[ConsumedAssignment],
        wait_ms: int,
        max_tasks: int,
    ) -> list[Assignment]:
        await trio.lowlevel.checkpoint()
        if not self.extension:
            self.refused += 1
            raise ExtensionUnavailable("Method not found", operation="NextTasks")
        self.em_ids.append(em_id)
        for record in records:
            if record in self.outstanding:
                self.outstanding.remove(record)
        self.next_tasks_calls.append((list(records), max_tasks))
        self.next_task_times.append(trio.current_time())
        self.polling += 1
        self.notify()
        try:
            with trio.move_on_after(wait_ms / 1000 if wait_ms else 0):
                while not self.responses:
                    await self._pushed.wait()
            if not self.responses:
                await trio.lowlevel.checkpoint()
                return []
            head = self.responses[0]
            if isinstance(head, EmClientError):
                self.responses.popleft()
                raise head
            taken: list[Assignment] = []
            while self.responses and len(taken) < max_tasks:
                if isinstance(self.responses[0], EmClientError):
                    break
                response = self.responses.popleft()
                assert isinstance(response, Assignment)
                self.outstanding.append(response.record)
                taken.append(response)
            return taken
        finally:
            self.polling -= 1
            self.notify()

    async def heartbeat(self, em_id: ExecutionManagerId) -> None:
        await trio.lowlevel.checkpoint()
        self.em_ids.append(em_id)
        self.heartbeat_times.append(trio.current_time())
        self.notify()
        if self.heartbeat_error is not None:
            raise self.heartbeat_error

    async def shutdown(
        self, em_id: ExecutionManagerId, records: Sequence[ConsumedAssignment]
    ) -> None:
        await trio.lowlevel.checkpoint()
        if self.shutdown_errors:
            self.notify()
            raise self.shutdown_errors.popleft()
        self.shutdown_calls.append(list(records))
        self.shutdown_ems.append(em_id)
        for record in records:
            if record in self.outstanding:
                self.outstanding.remove(record)
        self.notify()
        if self.block_shutdown:
            await trio.sleep_forever()


@attrs.define(eq=False)
class RegisterCall:
    assignment: Assignment
    em_id: ExecutionManagerId


@attrs.define(eq=False)
class Report:
    target: ReportTarget
    outputs: bytes | None = None
    message: str | None = None


@attrs.define(eq=False)
class FakeStorage(Watchable):
    """``LivenessClient`` and ``StorageClient``: queued answers, recorded calls."""

    session: SessionId = attrs.field(default=SessionId(5))
    heartbeat_replies: collections.deque[SessionId | EmClientError] = attrs.field(
        factory=collections.deque
    )
    heartbeat_times: list[float] = attrs.field(factory=list)
    heartbeat_delay: float = 0.0
    register_em_replies: collections.deque[EmClientError] = attrs.field(factory=collections.deque)
    register_em_calls: int = 0
    em_ids: list[ExecutionManagerId] = attrs.field(factory=list)
    """The id of each registration storage accepted: ``EM_ID``, then one more each time."""
    dead: set[ExecutionManagerId] = attrs.field(factory=set)
    """Ids declared dead: their heartbeats are answered ``MarkedDead``."""
    heartbeat_ids: list[ExecutionManagerId] = attrs.field(factory=list)
    register_replies: collections.deque[ExecutionContext | EmClientError] = attrs.field(
        factory=collections.deque
    )
    register_calls: list[RegisterCall] = attrs.field(factory=list)
    block_register: bool = False
    report_replies: collections.deque[EmClientError] = attrs.field(factory=collections.deque)
    report_attempts: int = 0
    block_reports: bool = False
    successes: list[Report] = attrs.field(factory=list)
    failures: list[Report] = attrs.field(factory=list)
    extension: bool = False
    """Serve ``ReportTaskOutcomes``; an upstream storage (the default) answers UNIMPLEMENTED."""
    batch_sizes: list[int] = attrs.field(factory=list)
    """Outcomes per ``ReportTaskOutcomes`` call."""
    register_batches: list[int] = attrs.field(factory=list)
    """Assignments per ``RegisterTaskInstances`` call."""
    batch_errors: collections.deque[EmClientError] = attrs.field(factory=collections.deque)
    """Failures of whole ``ReportTaskOutcomes`` calls, in order."""
    batch_delay: float = 0.0
    """Seconds each ``ReportTaskOutcomes`` takes."""
    register_delay: float = 0.0
    """Seconds each ``RegisterTaskInstances`` takes."""
    refused: int = 0
    """``ReportTaskOutcomes`` and ``RegisterTaskInstances`` calls answered UNIMPLEMENTED."""

    def __attrs_post_init__(self) -> None:
        Watchable.__init__(self)

    @property
    def reports(self) -> list[Report]:
        return self.successes + self.failures

    async def register(self, ip_address: str) -> Registration:
        await trio.lowlevel.checkpoint()
        self.register_em_calls += 1
        self.notify()
        if self.register_em_replies:
            raise self.register_em_replies.popleft()
        em_id = ExecutionManagerId(EM_ID + len(self.em_ids))
        self.em_ids.append(em_id)
        self.notify()
        return Registration(em_id, self.session)

    async def heartbeat(self, em_id: ExecutionManagerId) -> SessionId:
        await trio.lowlevel.checkpoint()
        assert em_id in self.em_ids
        self.heartbeat_ids.append(em_id)
        self.heartbeat_times.append(trio.current_time())
        self.notify()
        await trio.sleep(self.heartbeat_delay)
        if em_id in self.dead:
            raise MarkedDead(f"execution manager {em_id} was declared dead", operation="fake")
        reply = self.heartbeat_replies.popleft() if self.heartbeat_replies else self.session
        if isinstance(reply, EmClientError):
            raise reply
        return reply

    async def register_task_instance(
        self, assignment: Assignment, em_id: ExecutionManagerId
    ) -> ExecutionContext:
        await trio.lowlevel.checkpoint()
        self.register_calls.append(RegisterCall(assignment, em_id))
        self.notify()
        if self.block_register:
            await trio.sleep_forever()
        if not self.register_replies:
            raise AssertionError("FakeStorage: no register reply queued")
        reply = self.register_replies.popleft()
        if isinstance(reply, EmClientError):
            raise reply
        return reply

    async def register_task_instances(
        self, assignments: Sequence[Assignment], em_id: ExecutionManagerId
    ) -> list[ExecutionContext | EmClientError]:
        """Each item answered as ``register_task_instance`` would, after ``register_delay``."""
        await trio.lowlevel.checkpoint()
        if not self.extension:
            self.refused += 1
            raise ExtensionUnavailable("Method not found", operation="RegisterTaskInstances")
        self.register_batches.append(len(assignments))
        self.register_calls.extend(RegisterCall(a, em_id) for a in assignments)
        self.notify()
        if self.block_register:
            await trio.sleep_forever()
        await trio.sleep(self.register_delay)
        answers: list[ExecutionContext | EmClientError] = []
        for _ in assignments:
            if not self.register_replies:
                raise AssertionError("FakeStorage: no register reply queued")
            answers.append(self.register_replies.popleft())
        return answers

    async def _report(self) -> None:
        await trio.lowlevel.checkpoint()
        self.report_attempts += 1
        self.notify()
        if self.block_reports:
            await trio.sleep_forever()
        if self.report_replies:
            raise self.report_replies.popleft()

    async def report_success(self, target: ReportTarget, outputs: bytes) -> None:
        await self._report()
        self.successes.append(Report(target, outputs=outputs))
        self.notify()

    async def report_failure(self, target: ReportTarget, message: str) -> None:
        await self._report()
        self.failures.append(Report(target, message=message))
        self.notify()

    async def report_outcomes(
        self, reports: Sequence[tuple[ReportTarget, TaskOutcome]]
    ) -> list[EmClientError | None]:
        """Each item takes the next ``report_replies`` entry as its error, if any is left."""
        await trio.lowlevel.checkpoint()
        if not self.extension:
            self.refused += 1
            raise ExtensionUnavailable("Method not found", operation="ReportTaskOutcomes")
        self.batch_sizes.append(len(reports))
        self.notify()
        await trio.sleep(self.batch_delay)
        if self.block_reports:
            await trio.sleep_forever()
        if self.batch_errors:
            raise self.batch_errors.popleft()
        errors: list[EmClientError | None] = []
        for target, outcome in reports:
            self.report_attempts += 1
            if self.report_replies:
                errors.append(self.report_replies.popleft())
                continue
            errors.append(None)
            if isinstance(outcome, TaskSucceeded):
                self.successes.append(Report(target, outputs=outcome.outputs))
            else:
                self.failures.append(Report(target, message=outcome.message))
        self.notify()
        return errors


TaskBehaviour = Callable[[TaskRequest], Awaitable[TaskOutcome]]


async def echo(request: TaskRequest) -> TaskOutcome:
    """Succeed at once with the inputs as outputs."""
    await trio.lowlevel.checkpoint()
    return TaskSucceeded(request.serialized_task_io, 1)


@attrs.define(eq=False)
class FakeSlot:
    """``TaskSlot``: runs behaviours by task function, honours the pool's shutdown deadline."""

    index: int
    pool: FakePool
    running: TaskRequest | None = None
    _scope: trio.CancelScope | None = None
    _revoked: bool = False

    def revoke(self, instance_id: TaskInstanceId) -> bool:
        if self.running is None or self.running.task_instance_id != instance_id:
            return False
        assert self._scope is not None
        self._revoked = True
        self._scope.cancel()
        return True

    @property
    def busy(self) -> bool:
        return self.running is not None

    async def wait_ready(self) -> None:
        await trio.lowlevel.checkpoint()

    async def run(self, request: TaskRequest) -> TaskOutcome:
        behaviour = self.pool.behaviours.get(request.task_func, echo)
        self.running = request
        self.pool.started.append(request)
        self.pool.notify()
        scope = trio.CancelScope(deadline=self.pool.deadline)
        self.pool.scopes.add(scope)
        self._scope, self._revoked = scope, False
        try:
            with scope:
                with trio.move_on_after(request.hard_timeout) as timeout:
                    return await behaviour(request)
                assert timeout.cancelled_caught
                return TaskFailed("hard timeout exceeded", PoolFailureKind.TIMEOUT)
            if self._revoked:
                return TaskFailed("revoked by the fake pool", PoolFailureKind.REVOKED)
            return TaskFailed("killed by the fake pool", PoolFailureKind.SHUTDOWN)
        finally:
            self.pool.scopes.discard(scope)
            self._scope = None
            self.running = None
            self.pool.finished.append(request)
            self.pool.notify()


@attrs.define(eq=False)
class FakePool(Watchable):
    """``TaskPool`` of ``FakeSlot`` s."""

    size: int = 1
    behaviours: dict[str, TaskBehaviour] = attrs.field(factory=dict)
    deadline: float = math.inf
    scopes: set[trio.CancelScope] = attrs.field(factory=set)
    started: list[TaskRequest] = attrs.field(factory=list)
    finished: list[TaskRequest] = attrs.field(factory=list)
    opened: int = 0
    open_error: BaseException | None = None
    slots: list[FakeSlot] = attrs.field(factory=list)
    revoked: list[list[TaskInstanceId]] = attrs.field(factory=list)
    """Every ``revoke`` call's ids."""

    def __attrs_post_init__(self) -> None:
        Watchable.__init__(self)
        self.slots = [FakeSlot(index, self) for index in range(self.size)]

    def set_shutdown_deadline(self, deadline: float) -> None:
        self.deadline = deadline
        for scope in self.scopes:
            scope.deadline = deadline

    def revoke(self, instance_ids: Iterable[TaskInstanceId]) -> list[TaskInstanceId]:
        ids = list(instance_ids)
        killed = [i for i in ids if any(slot.revoke(i) for slot in self.slots)]
        self.revoked.append(ids)
        self.notify()
        return killed

    @asynccontextmanager
    async def open(self) -> AsyncIterator[FakePool]:
        await trio.lowlevel.checkpoint()
        if self.open_error is not None:
            raise self.open_error
        self.opened += 1
        yield self


@attrs.define(eq=False)
class FakeRevocations(Watchable):
    """``RevocationClient``: storage's revocation long poll, with its cursor, over a list."""

    session: SessionId = attrs.field(default=SessionId(5))
    extension: bool = True
    """Serve ``WaitRevokedInstances``; False: answer UNIMPLEMENTED, as upstream storage does."""
    errors: collections.deque[EmClientError] = attrs.field(factory=collections.deque)
    calls: list[tuple[SessionId, int, int]] = attrs.field(factory=list)
    """``(session, known_revision, wait_ms)`` of each call."""
    em_ids: list[ExecutionManagerId] = attrs.field(factory=list)
    """The EM id of each call."""
    waiting: int = 0
    _revision: int = 0
    _entries: list[tuple[int, TaskInstanceId]] = attrs.field(factory=list)
    _revoked: RepeatedEvent = attrs.field(factory=RepeatedEvent)

    def __attrs_post_init__(self) -> None:
        Watchable.__init__(self)

    def revoke(self, *instance_ids: int) -> None:
        for instance_id in instance_ids:
            self._revision += 1
            self._entries.append((self._revision, TaskInstanceId(instance_id)))
        self._revoked.set()

    @property
    def pending(self) -> list[TaskInstanceId]:
        """Revocations not acknowledged yet."""
        return [instance_id for _, instance_id in self._entries]

    async def wait_revoked_instances(
        self, em_id: ExecutionManagerId, session: SessionId, known_revision: int, wait_ms: int
    ) -> RevokedInstances:
        self.em_ids.append(em_id)
        self.calls.append((session, known_revision, wait_ms))
        self.notify()
        await trio.lowlevel.checkpoint()
        if not self.extension:
            raise ExtensionUnavailable("unknown service", operation="WaitRevokedInstances")
        if self.errors:
            raise self.errors.popleft()
        known = known_revision if session == self.session else 0
        self._entries = [(r, i) for r, i in self._entries if r > known]
        self.waiting += 1
        self.notify()
        try:
            with trio.move_on_after(wait_ms / 1000):
                while not self._entries:
                    await self._revoked.wait()
        finally:
            self.waiting -= 1
        return RevokedInstances(self.session, self._revision, tuple(self.pending))


def fake_clients(
    storage: FakeStorage, scheduler: FakeScheduler, revocations: FakeRevocations | None = None
) -> EmClients:
    return EmClients(liveness=storage, scheduler=scheduler, storage=storage, revocation=revocations)


def transport(message: str = "connection refused") -> TransportError:
    return TransportError(message, operation="fake")
