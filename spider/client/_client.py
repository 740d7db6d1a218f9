"""``SpiderClient``: submit, start, watch, read and cancel jobs over Spider's storage gRPC API.

A job's round trip takes two calls to a Spider-py storage: ``SubmitJob`` (register and start in
one transaction) and ``WaitForJob`` long polls that end with the outputs or the error, from
Spider-py's jobs extension (docs/storage.md#jobs-extension); ``run`` makes it one ``RunJob`` call
for a job that ends within ``RUN_JOB_WAIT_SEC``. A storage that answers UNIMPLEMENTED
(upstream's) gets Spider's own calls instead (RegisterJob, StartJob, GetJobState polling,
GetJobOutputs, GetJobError); the client remembers which kind of storage it talks to.

Retries follow what is safe to repeat. Reads (WaitForJob among them) and CancelJob (which
answers the current state when the job is already cancelled or over) retry every transient
failure. StartJob retries too, and a FAILED_PRECONDITION after an ambiguous attempt means that
attempt started the job. SubmitJob, RegisterJob and AddResourceGroup create something, so they
are retried only when the request provably never left (connection refused, host unknown); any
other transient failure raises ``SubmissionUnknownError`` rather than risk a duplicate, unlike
upstream's client.
"""

from __future__ import annotations

import socket
import time
from collections.abc import AsyncIterator, Collection, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import attrs
import ormsgpack
import trio

from spider.client import _jobs_extension as jobs_ext
from spider.client._catalog import JobPage, TaskPage, page_from_proto, task_page_from_proto
from spider.client._config import DEFAULT_STORAGE, ClientConfig
from spider.client._job import JobBuilder, JobDescription
from spider.client._progress import JobProgress, ProgressCallback
from spider.client._state import job_state_from_proto, job_state_to_proto
from spider.client._submitted import JobRef, SubmittedJob, as_submitted
from spider.client.errors import (
    ClientError,
    JobCancelledError,
    JobFailedError,
    JobNotFoundError,
    JobStateError,
    NotAvailableError,
    OutputDecodeError,
    RequestRejectedError,
    ResourceGroupError,
    StorageServerError,
    StorageUnavailableError,
    SubmissionUnknownError,
)
from spider.core.errors import CodecError
from spider.core.ids import JobId, ResourceGroupId, SessionId
from spider.core.job_state import JobState
from spider.core.retry import FailedAttempt, retry
from spider.core.task_outputs import decode_task_outputs
from spider.proto import common
from spider.proto import storage as storage_pb
from spider.proto.spider_py import catalog as catalog_pb
from spider.proto.spider_py import status as status_pb
from spider.rpc import (
    TRANSIENT,
    AlreadyExistsError,
    Channel,
    Endpoint,
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
    RpcError,
    UnaryMethod,
    UnauthenticatedError,
    UnimplementedError,
    connect_channel,
)
from spider.tdl import TdlDeserializationError, value_codec

_T = TypeVar("_T")
_Orchestration = storage_pb.JobOrchestrationServiceStub

NOT_EXPOSED = (
    "execution managers alive",
    "ready-queue depths",
    "jobs by state",
)
"""Cluster facts Spider's storage protocol has no call for: only Spider-py's
``ClusterStatusService`` extension tells them, so a storage without it (upstream's) cannot."""


@attrs.frozen
class SchedulerInfo:
    """A scheduler registered with storage."""

    scheduler_id: int
    host: str
    port: int


@attrs.frozen
class ExecutionManagerInfo:
    """An execution manager as storage's database records it."""

    execution_manager_id: int
    ip_address: str
    alive: bool
    seconds_since_heartbeat: float
    running_task_instances: int
    """Task instances it registered that are not yet reported (or otherwise over)."""


@attrs.frozen
class QueueLane:
    """One lane of storage's inbound queue: ready work waiting for the scheduler."""

    depth: int
    capacity: int
    """The depth above which storage warns; a high-water mark, not a limit."""


@attrs.frozen
class DatabaseInfo:
    """Whether storage's database takes writes, as storage's own calls last found it. While it
    does not (a full disk, a read-only server), storage answers reads, answers writes
    UNAVAILABLE (clients retry them), and no task instance times out."""

    writable: bool
    problem: str
    """The database's error while not writable, else empty."""
    unwritable_for_sec: float
    last_outage_sec: float
    """The last outage that ended (0 if none), and how long ago it ended."""
    since_last_outage_sec: float


@attrs.frozen
class ClusterDetails:
    """What Spider-py's ``ClusterStatusService`` extension adds
    (docs/storage.md#cluster-status-extension)."""

    execution_managers: tuple[ExecutionManagerInfo, ...]
    """Every Alive EM, then the most recently heard-from Dead ones."""
    dead_execution_managers: int
    """All Dead EMs, listed or not (at most ``dead_execution_managers_listed_max`` are)."""
    dead_execution_managers_listed_max: int
    lanes: dict[str, QueueLane]
    """By lane: ``task``, ``commit``, ``cleanup``."""
    live_task_instances: int
    cached_jobs: dict[JobState, int]
    """Jobs in storage's job cache: every unfinished job of this storage process, and finished
    ones only for ``terminated_job_retention_sec`` after they ended."""
    terminated_job_retention_sec: float
    stored_jobs: dict[JobState, int]
    """Every job in storage's database, until its database retention deletes finished ones."""
    database: DatabaseInfo
    task_outcomes: dict[str, int] = attrs.field(factory=dict)
    """Task instances that ended since storage started, by outcome (``succeeded``, ``failed``,
    ``timed_out``, ``lost``); two readings give the throughput."""

    @property
    def alive_execution_managers(self) -> int:
        """How many EMs are Alive."""
        return sum(em.alive for em in self.execution_managers)


@attrs.frozen
class ClusterStatus:
    """What storage tells about the cluster.

    ``schedulers`` is ``None`` when storage does not implement GetSchedulers (upstream's does
    not). ``details`` is ``None`` when storage does not implement Spider-py's
    ``ClusterStatusService`` (upstream's does not); ``not_exposed`` then lists what cannot be
    known from this storage.
    """

    endpoint: str
    session_id: SessionId
    round_trip_ms: float
    schedulers: tuple[SchedulerInfo, ...] | None
    details: ClusterDetails | None = None

    @property
    def not_exposed(self) -> tuple[str, ...]:
        """The cluster facts this storage cannot tell (none if it serves the extension)."""
        return NOT_EXPOSED if self.details is None else ()


@attrs.frozen
class JobResult:
    """How a job ended, as ``SpiderClient.wait_result`` reports it."""

    job_id: int
    state: JobState
    """Terminal: Succeeded, Failed or Cancelled."""
    raw_outputs: tuple[bytes, ...] | None = None
    """A Succeeded job's outputs as msgpack payloads, in graph-output order."""
    error: str | None = None
    """A Failed job's error (the message of the task failure that failed it)."""


RUN_JOB_WAIT_SEC = 1.0
"""The longest ``run`` lets its ``RunJob`` call wait for the job before asking ``WaitForJob``.

Short because a call that fails after storage registered the job cannot say which job it
made (``SubmissionUnknownError``): the wait bounds that window, and a job that runs longer
costs one more call, which is nothing beside its run time."""


@attrs.define(eq=False)
class SpiderClient:
    """A Trio client of one storage service; get one from ``open_client``."""

    channel: Channel
    config: ClientConfig
    _jobs_extension: bool | None = attrs.field(init=False)
    """Whether storage serves Spider-py's jobs extension; ``None`` until a call tells."""

    _run_job: bool | None = attrs.field(init=False)
    """Whether storage serves ``RunJob`` (a Spider-py storage older than it serves the rest of
    the extension only); ``None`` until a call tells."""

    @_jobs_extension.default
    def _extension_unknown(self) -> bool | None:
        return None if self.config.jobs_extension else False

    @_run_job.default
    def _run_job_unknown(self) -> bool | None:
        return None if self.config.jobs_extension else False

    @property
    def endpoint(self) -> Endpoint:
        """The storage service this client talks to."""
        return self.channel.endpoint

    # --- resource groups ---------------------------------------------------------------------

    async def add_resource_group(self, external_id: str, password: bytes = b"") -> ResourceGroupId:
        """Create a resource group (the owner tag every job needs); return its id.

        ``ResourceGroupError`` if the name is taken: storage offers no lookup by name, so keep
        the id of a group you mean to reuse.
        """
        request = storage_pb.AddResourceGroupRequest(
            external_resource_group_id=external_id, password=password
        )
        reply = await self._create(
            "AddResourceGroup",
            storage_pb.ResourceGroupManagementServiceStub.add_resource_group,
            request,
        )
        return ResourceGroupId(reply.resource_group_id)

    async def verify_resource_group(self, group_id: int, password: bytes = b"") -> None:
        """Check a group's password; ``ResourceGroupError`` if it is wrong or the group unknown."""
        request = storage_pb.VerifyResourceGroupRequest(
            resource_group_id=group_id, password=password
        )
        await self._read(
            "VerifyResourceGroup",
            None,
            storage_pb.ResourceGroupManagementServiceStub.verify_resource_group,
            request,
        )

    # --- jobs --------------------------------------------------------------------------------

    async def submit(
        self, job: JobDescription | JobBuilder, resource_group: int, *, start: bool = False
    ) -> SubmittedJob:
        """Register ``job``; return its handle. It stays Ready until ``start``, unless
        ``start=True`` starts it in the same call (and the same storage transaction)."""
        description = job.build() if isinstance(job, JobBuilder) else job
        graph_bytes, input_bytes = description.encode()
        job_id = await self._register(resource_group, graph_bytes, input_bytes, start=start)
        return _submitted(job_id, description)

    async def _register(
        self, resource_group: int, graph_bytes: bytes, input_bytes: bytes, *, start: bool
    ) -> JobId:
        if self._jobs_extension is not False:
            request = jobs_ext.submit_job_request(
                resource_group, graph_bytes, input_bytes, start=start
            )
            try:
                reply = await self._create(
                    "SubmitJob", jobs_ext.SUBMIT_JOB, request, unimplemented=True
                )
            except UnimplementedError:
                # Nothing was registered: fall back to Spider's calls, now and from now on.
                self._jobs_extension = False
            else:
                self._jobs_extension = True
                return jobs_ext.submitted_job_id(reply)
        register = storage_pb.RegisterJobRequest(
            resource_group_id=resource_group,
            compressed_serialized_task_graph=graph_bytes,
            compressed_serialized_inputs=input_bytes,
        )
        registered = await self._create("RegisterJob", _Orchestration.register_job, register)
        job_id = JobId(registered.job_id)
        if start:
            await self.start(job_id)
        return job_id

    async def start(self, job: JobRef) -> JobState:
        """Start a Ready job (Running); ``JobStateError`` if it was already started."""
        job_id = as_submitted(job).id
        request = storage_pb.JobIdRequest(job_id=job_id)
        ambiguous = False

        def note_ambiguous(_failed: FailedAttempt) -> None:
            # The failed attempt's answer was lost: it may have started the job.
            nonlocal ambiguous
            ambiguous = True

        try:
            reply = await retry(
                lambda: self.channel.call(
                    _Orchestration.start_job, request, deadline=self.config.call_deadline
                ),
                delays=self.config.retry.delays,
                rule=TRANSIENT,
                on_retry=note_ambiguous,
            )
        except FailedPreconditionError as error:
            if ambiguous:
                # An attempt whose answer was lost may have started it; then this is fine.
                state = await self.state(job_id)
                if state is not JobState.READY:
                    return state
            raise self._translate(error, "StartJob", job_id) from error
        except RpcError as error:
            raise self._translate(error, "StartJob", job_id) from error
        return job_state_from_proto(reply.state)

    async def cancel(self, job: JobRef) -> JobState:
        """Cancel a job; return CleanupReady (its cleanup task runs next) or Cancelled.

        Cancelling a job that is already cancelled or over answers its state; a job whose tasks
        all succeeded and that has no cleanup task cannot be cancelled (``JobStateError``).
        """
        job_id = as_submitted(job).id
        reply = await self._read(
            "CancelJob", job_id, _Orchestration.cancel_job, storage_pb.JobIdRequest(job_id=job_id)
        )
        return job_state_from_proto(reply.state)

    async def state(self, job: JobRef) -> JobState:
        """The job's current state."""
        job_id = as_submitted(job).id
        reply = await self._read(
            "GetJobState",
            job_id,
            _Orchestration.get_job_state,
            storage_pb.JobIdRequest(job_id=job_id),
        )
        return job_state_from_proto(reply.state)

    async def wait(self, job: JobRef, *, on_progress: ProgressCallback | None = None) -> JobState:
        """Wait until the job is terminal and return that state.

        ``on_progress`` gets a ``JobProgress`` after every answer from storage. There is no
        timeout: wrap the call in ``trio.fail_after`` or ``trio.move_on_after`` to bound it.
        """
        state, _ = await self._wait(as_submitted(job), on_progress)
        return state

    async def wait_result(
        self, job: JobRef, *, on_progress: ProgressCallback | None = None
    ) -> JobResult:
        """Wait until the job is terminal; its state with its outputs or error.

        Against a Spider-py storage the outputs or error come with the answer that says the job
        is over; against upstream's they take one more call. ``on_progress`` as in ``wait``.
        """
        submitted = as_submitted(job)
        state, answer = await self._wait(submitted, on_progress)
        return await self._result(submitted, state, answer)

    async def _result(
        self, submitted: SubmittedJob, state: JobState, answer: jobs_ext.WaitAnswer | None
    ) -> JobResult:
        """A terminal job's result from the answer that said it ended (``None``: ask for it)."""
        if state is JobState.SUCCEEDED:
            if answer is None:
                return JobResult(submitted.id, state, tuple(await self.raw_outputs(submitted)))
            payloads = _decode_payloads(submitted.id, answer.serialized_outputs)
            return JobResult(submitted.id, state, tuple(payloads))
        if state is JobState.FAILED:
            error = answer.error_message if answer is not None else await self.error(submitted)
            return JobResult(submitted.id, state, error=error)
        reason = answer.error_message if answer is not None else ""
        return JobResult(submitted.id, state, error=reason or None)

    async def _wait(
        self,
        job: SubmittedJob,
        on_progress: ProgressCallback | None,
        first: jobs_ext.WaitAnswer | None = None,
        started: float | None = None,
    ) -> tuple[JobState, jobs_ext.WaitAnswer | None]:
        """The terminal state, with WaitForJob's last answer (``None`` when storage lacks the
        jobs extension and the state was polled). ``first``: an answer already had (RunJob's),
        taken as the first one; ``started``: when the wait began, if before this call."""
        started = time.monotonic() if started is None else started
        delays = self.config.poll.delays()
        previous: JobState | None = None
        answers = 0
        slice_sec = self._wait_slice(on_progress)
        while True:
            asked = time.monotonic()
            if first is not None:
                answer: jobs_ext.WaitAnswer | None = first
                first = None
            else:
                answer = await self._long_poll(job.id, slice_sec)
            # Spider's protocol cannot push a job's state: without the extension, poll it.
            state = answer.state if answer is not None else await self.state(job.id)
            answers += 1
            if on_progress is not None:
                on_progress(
                    JobProgress(
                        job.id, state, previous, time.monotonic() - started, answers, job.num_tasks
                    )
                )
            if state.is_terminal:
                return state, answer
            previous = state
            # A long poll has waited already; a poll (or a wait that storage cut short) has
            # not, so the backoff spaces the calls out.
            delay = next(delays, self.config.poll.cap)
            await trio.sleep(max(0.0, delay - (time.monotonic() - asked)))

    def _wait_slice(self, on_progress: ProgressCallback | None) -> float:
        """Seconds one long poll asks storage to wait: short while someone watches progress,
        since a change between two non-terminal states shows only when a wait ends."""
        return self.config.long_poll if on_progress is None else self.config.progress_poll

    async def _long_poll(self, job_id: int, wait_sec: float) -> jobs_ext.WaitAnswer | None:
        """WaitForJob's answer, or ``None`` if storage does not serve it (then or before)."""
        if self._jobs_extension is False:
            return None
        try:
            reply = await self.channel.call(
                jobs_ext.WAIT_FOR_JOB,
                jobs_ext.wait_for_job_request(job_id, wait_sec),
                deadline=self.config.call_deadline + wait_sec,
                retry=self.config.retry,
            )
        except UnimplementedError:
            self._jobs_extension = False
            return None
        except RpcError as error:
            raise self._translate(error, "WaitForJob", job_id) from error
        self._jobs_extension = True
        return jobs_ext.wait_answer(reply)

    async def raw_outputs(self, job: JobRef) -> list[bytes]:
        """A Succeeded job's outputs as msgpack payloads, in graph-output order."""
        job_id = as_submitted(job).id
        reply = await self._read(
            "GetJobOutputs",
            job_id,
            _Orchestration.get_job_outputs,
            storage_pb.JobIdRequest(job_id=job_id),
        )
        return _decode_payloads(job_id, reply.serialized_outputs)

    async def outputs(self, job: JobRef, types: Sequence[Any] | None = None) -> list[Any]:
        """A Succeeded job's outputs as Python values, in graph-output order.

        Decoded with ``types`` (one annotation per output) if given, else with the output types
        of a job submitted through this client, else as plain msgpack values.
        ``JobStateError`` if the job has not succeeded.
        """
        submitted = as_submitted(job)
        payloads = await self.raw_outputs(submitted)
        annotations = tuple(types) if types is not None else submitted.output_annotations
        return decode_outputs(submitted.id, payloads, annotations)

    async def error(self, job: JobRef) -> str:
        """A Failed job's error: the message of the task failure that failed it."""
        job_id = as_submitted(job).id
        reply = await self._read(
            "GetJobError",
            job_id,
            _Orchestration.get_job_error,
            storage_pb.JobIdRequest(job_id=job_id),
        )
        return reply.error_message

    async def run(
        self,
        job: JobDescription | JobBuilder,
        resource_group: int,
        *,
        on_progress: ProgressCallback | None = None,
    ) -> list[Any]:
        """Submit, start and wait for ``job``; return its outputs.

        ``JobFailedError`` (with the task's message) if it fails, ``JobCancelledError`` if
        someone cancels it.
        """
        description = job.build() if isinstance(job, JobBuilder) else job
        ran = await self._run_in_one_call(description, resource_group, on_progress)
        if ran is not None:
            submitted, result = ran
        else:
            submitted = await self.submit(description, resource_group, start=True)
            result = await self.wait_result(submitted, on_progress=on_progress)
        if result.state is JobState.FAILED:
            raise JobFailedError(submitted.id, result.error or "")
        if result.state is JobState.CANCELLED:
            raise JobCancelledError(submitted.id)
        assert result.raw_outputs is not None
        return decode_outputs(submitted.id, result.raw_outputs, submitted.output_annotations)

    async def _run_in_one_call(
        self,
        description: JobDescription,
        resource_group: int,
        on_progress: ProgressCallback | None,
    ) -> tuple[SubmittedJob, JobResult] | None:
        """Submit, start and wait with ``RunJob``, then ``WaitForJob`` if the job outlasts its
        wait; ``None`` if storage does not serve ``RunJob`` (nothing was submitted)."""
        if self._jobs_extension is False or self._run_job is False:
            return None
        started = time.monotonic()
        wait_sec = min(RUN_JOB_WAIT_SEC, self._wait_slice(on_progress))
        graph_bytes, input_bytes = description.encode()
        request = jobs_ext.run_job_request(resource_group, graph_bytes, input_bytes, wait_sec)
        try:
            reply = await self._create(
                "RunJob", jobs_ext.RUN_JOB, request, unimplemented=True, waits=wait_sec
            )
        except UnimplementedError:
            self._run_job = False  # nothing was registered: SubmitJob (or Spider's calls) next
            return None
        self._run_job = self._jobs_extension = True
        job_id, first = jobs_ext.run_answer(reply)
        submitted = _submitted(job_id, description)
        state, answer = await self._wait(submitted, on_progress, first, started)
        return submitted, await self._result(submitted, state, answer)

    # --- cluster -----------------------------------------------------------------------------

    async def reach(self, within: float) -> None:
        """One ``GetSession``, not retried and bounded by ``within`` seconds:
        ``StorageUnavailableError`` at once when storage cannot be reached (the command line
        checks this first, so that a wrong address fails in seconds, not after the retries
        that ride out a storage restart)."""
        try:
            await self.channel.call(
                storage_pb.SessionManagementServiceStub.get_session, common.Void(), deadline=within
            )
        except RpcError as error:
            raise self._translate(error, "GetSession", None) from error

    async def list_jobs(
        self,
        *,
        states: Collection[JobState] = (),
        resource_group: int | None = None,
        created_after: float | None = None,
        created_before: float | None = None,
        page_size: int = 100,
        page_token: int | None = None,
    ) -> JobPage:
        """A page of the jobs matching every filter given, newest first (Spider-py's job
        catalog; ``NotAvailableError`` from a storage that does not serve it, such as
        upstream's). Times are Unix seconds; pass the page's ``next_page_token`` for the next.
        """
        request = catalog_pb.ListJobsRequest(
            states=[job_state_to_proto(state) for state in states],
            created_after=created_after or 0.0,
            created_before=created_before or 0.0,
            page_size=page_size,
            page_token=page_token or 0,
        )
        if resource_group is not None:
            request.resource_group_id = resource_group
        method = catalog_pb.JobCatalogServiceStub.list_jobs
        reply = await self._catalog_call(method, request, "ListJobs", None, "list jobs")
        return page_from_proto(reply)

    async def get_job_tasks(
        self, job_id: int, *, page_size: int = 1000, page_token: int | None = None
    ) -> TaskPage:
        """A page of the job's tasks with their states, instance counts, times and last errors
        (Spider-py's job catalog; ``NotAvailableError`` from a storage that does not serve it).
        Tasks come in index order, the commit and cleanup tasks on the last page; pass the
        page's ``next_page_token`` for the next."""
        request = catalog_pb.GetJobTasksRequest(
            job_id=job_id, page_size=page_size, page_token=page_token or 0
        )
        method = catalog_pb.JobCatalogServiceStub.get_job_tasks
        reply = await self._catalog_call(
            method, request, "GetJobTasks", job_id, "list a job's tasks"
        )
        return task_page_from_proto(reply)

    async def _catalog_call(
        self,
        method: UnaryMethod[Any, _T],
        request: Any,
        operation: str,
        job_id: int | None,
        what: str,
    ) -> _T:
        """A call of Spider-py's job catalog; ``NotAvailableError`` saying storage cannot
        ``what`` when it does not serve the catalog (an upstream storage)."""
        try:
            return await self.channel.call(
                method, request, deadline=self.config.call_deadline, retry=self.config.retry
            )
        except UnimplementedError as error:
            raise NotAvailableError(
                f"storage at {self.endpoint} does not {what}: it does not serve Spider-py's "
                "job catalog (an upstream Spider storage?)"
            ) from error
        except RpcError as error:
            raise self._translate(error, operation, job_id) from error

    async def cluster_status(self) -> ClusterStatus:
        """What storage tells about the cluster (see ``ClusterStatus``).

        Works against any storage: EMs, queue depths and jobs by state come from Spider-py's
        ``ClusterStatusService``, and are ``None`` (``details``) when storage does not serve it.
        """
        started = time.monotonic()
        session = await self._read(
            "GetSession",
            None,
            storage_pb.SessionManagementServiceStub.get_session,
            common.Void(),
        )
        round_trip = (time.monotonic() - started) * 1000
        try:
            reply = await self.channel.call(
                storage_pb.SchedulerRegistrationServiceStub.get_schedulers,
                common.Void(),
                deadline=self.config.call_deadline,
                retry=self.config.retry,
            )
        except UnimplementedError:
            schedulers = None
        except RpcError as error:
            raise self._translate(error, "GetSchedulers", None) from error
        else:
            schedulers = tuple(
                SchedulerInfo(s.scheduler_id, s.host, s.port) for s in reply.schedulers.schedulers
            )
        return ClusterStatus(
            str(self.endpoint),
            SessionId(session.session_id),
            round_trip,
            schedulers,
            await self._cluster_details(),
        )

    async def _cluster_details(self) -> ClusterDetails | None:
        try:
            reply = await self.channel.call(
                status_pb.ClusterStatusServiceStub.get_cluster_status,
                status_pb.GetClusterStatusRequest(),
                deadline=self.config.call_deadline,
                retry=self.config.retry,
            )
        except UnimplementedError:
            return None  # Spider's own storage: the extension is Spider-py's
        except RpcError as error:
            raise self._translate(error, "GetClusterStatus", None) from error
        return ClusterDetails(
            tuple(
                ExecutionManagerInfo(
                    em.execution_manager_id,
                    em.ip_address,
                    em.alive,
                    em.seconds_since_heartbeat,
                    em.running_task_instances,
                )
                for em in reply.execution_managers
            ),
            reply.dead_execution_managers,
            reply.dead_execution_managers_listed_max,
            {
                "task": QueueLane(reply.task_lane.depth, reply.task_lane.capacity),
                "commit": QueueLane(reply.commit_lane.depth, reply.commit_lane.capacity),
                "cleanup": QueueLane(reply.cleanup_lane.depth, reply.cleanup_lane.capacity),
            },
            reply.live_task_instances,
            _job_counts(reply.cached_jobs),
            reply.terminated_job_retention_sec,
            _job_counts(reply.stored_jobs),
            _database_info(reply),
            {item.outcome: item.count for item in reply.task_outcomes},
        )

    # --- calls -------------------------------------------------------------------------------

    async def _read(
        self,
        operation: str,
        job_id: int | None,
        method: UnaryMethod[Any, _T],
        request: Any,
    ) -> _T:
        try:
            return await self.channel.call(
                method, request, deadline=self.config.call_deadline, retry=self.config.retry
            )
        except RpcError as error:
            raise self._translate(error, operation, job_id) from error

    async def _create(
        self,
        operation: str,
        method: UnaryMethod[Any, _T],
        request: Any,
        *,
        unimplemented: bool = False,
        waits: float = 0.0,
    ) -> _T:
        """Call ``method``, retrying only failures that provably never reached storage.

        With ``unimplemented``, an ``UnimplementedError`` is raised as it is (the caller falls
        back to other calls) instead of being translated. ``waits``: seconds storage may wait
        before answering, beyond the usual deadline.
        """
        deadline = self.config.call_deadline + waits
        try:
            return await retry(
                lambda: self.channel.call(method, request, deadline=deadline),
                delays=self.config.retry.delays,
                rule=_provably_unsent,
            )
        except RpcError as error:
            if unimplemented and isinstance(error, UnimplementedError):
                raise
            if error.is_transient and not _never_sent(error):
                raise SubmissionUnknownError(
                    f"{operation} to storage at {self.endpoint} failed after it may have "
                    f"been received ({error}); storage may or may not have done it, and "
                    "retrying could do it twice. Check before retrying"
                ) from error
            raise self._translate(error, operation, None) from error

    def _translate(self, error: RpcError, operation: str, job_id: int | None) -> ClientError:
        about = f"job {job_id}" if job_id is not None else f"storage at {self.endpoint}"
        if isinstance(error, NotFoundError) and job_id is not None:
            return JobNotFoundError(job_id)
        if isinstance(error, FailedPreconditionError):
            return JobStateError(f"{operation} of {about}: {error.message}")
        if isinstance(error, InvalidArgumentError):
            return RequestRejectedError(
                f"{operation}: storage rejected the request: {error.message}"
            )
        if isinstance(error, UnauthenticatedError) and error.message.startswith(
            "invalid resource group"
        ):
            return ResourceGroupError(
                f"{operation}: {error.message}: the resource group does not exist or the "
                "password is wrong; create one with add_resource_group"
            )
        if isinstance(error, UnauthenticatedError | PermissionDeniedError):
            # A storage that requires group credentials (docs/security.md).
            return ResourceGroupError(
                f"{operation} of {about}: {error.message}; give the group's credential "
                "(ClientConfig.group_credential, or spider --group-id with --group-password-file)"
            )
        if isinstance(error, AlreadyExistsError):
            return ResourceGroupError(
                f"{operation}: {error.message}; pick another name (storage has no lookup by "
                "name, so reuse a group by its id)"
            )
        if error.is_transient:
            return StorageUnavailableError(
                f"{operation}: cannot reach storage at {self.endpoint}: {error.message}; is it "
                "running there? (set the address with --storage or SPIDER_STORAGE)"
            )
        return StorageServerError(f"{operation} on {about} failed: {error}")


def _database_info(reply: status_pb.GetClusterStatusResponse) -> DatabaseInfo:
    if not reply.HasField("database"):
        # A Spider-py storage from before the field: it said nothing, so claim nothing bad.
        return DatabaseInfo(True, "", 0.0, 0.0, 0.0)
    db = reply.database
    return DatabaseInfo(
        db.writable,
        db.problem,
        db.unwritable_for_sec,
        db.last_outage_sec,
        db.since_last_outage_sec,
    )


def _job_counts(counts: Sequence[status_pb.JobStateCount]) -> dict[JobState, int]:
    return {job_state_from_proto(entry.state): entry.count for entry in counts}


def _submitted(job_id: JobId, description: JobDescription) -> SubmittedJob:
    """The handle of a job storage registered from ``description``."""
    return SubmittedJob(
        job_id, description.output_annotations, description.output_labels, len(description.graph)
    )


def _decode_payloads(job_id: int, serialized_outputs: bytes) -> list[bytes]:
    try:
        return decode_task_outputs(serialized_outputs)
    except CodecError as exc:
        raise OutputDecodeError(f"job {job_id}: storage sent unreadable outputs: {exc}") from exc


def _never_sent(error: RpcError) -> bool:
    # The channel chains the transport exception: these two happen before any byte is sent.
    return isinstance(error.__cause__, ConnectionRefusedError | socket.gaierror)


def _provably_unsent(error: Exception) -> bool:
    """The retry rule of calls that must not be done twice: transient failures that provably
    never reached storage."""
    return isinstance(error, RpcError) and error.is_transient and _never_sent(error)


def decode_outputs(
    job_id: int, payloads: Sequence[bytes], annotations: Sequence[Any] | None
) -> list[Any]:
    """Job output payloads as Python values (see ``SpiderClient.outputs``)."""
    if annotations is None:
        try:
            return [ormsgpack.unpackb(p, option=ormsgpack.OPT_NON_STR_KEYS) for p in payloads]
        except (ormsgpack.MsgpackDecodeError, TypeError) as exc:
            raise OutputDecodeError(f"job {job_id}: an output is not valid msgpack: {exc}") from exc
    if len(annotations) != len(payloads):
        raise OutputDecodeError(
            f"job {job_id} has {len(payloads)} output(s) but {len(annotations)} type(s) were "
            "given; give one type per graph output"
        )
    values = []
    for position, (payload, annotation) in enumerate(zip(payloads, annotations, strict=True)):
        try:
            values.append(
                value_codec(annotation).decode(payload, f"job {job_id}, output {position}")
            )
        except TdlDeserializationError as exc:
            raise OutputDecodeError(str(exc)) from None
    return values


@asynccontextmanager
async def open_client(
    storage: Endpoint | str = DEFAULT_STORAGE, config: ClientConfig | None = None
) -> AsyncIterator[SpiderClient]:
    """A client of the storage service at ``storage`` (``Endpoint`` or ``"host:port"``).

    Connecting is lazy: an unreachable storage shows on the first call, as
    ``StorageUnavailableError``.
    """
    endpoint = Endpoint.parse(storage) if isinstance(storage, str) else storage
    config = config or ClientConfig()
    rpc_config = config.rpc_with_credentials()
    async with connect_channel(endpoint, rpc_config) as channel:
        yield SpiderClient(channel, config)
