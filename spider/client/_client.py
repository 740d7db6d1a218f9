"""``SpiderClient``: submit, start, watch, read and cancel jobs over Spider's storage gRPC API.

Retries follow what is safe to repeat. Reads and CancelJob (which answers the current state
when the job is already cancelled or over) retry every transient failure. StartJob retries too,
and a FAILED_PRECONDITION after an ambiguous attempt means that attempt started the job.
RegisterJob and AddResourceGroup create something, so they are retried only when the request
provably never left (connection refused, host unknown); any other transient failure raises
``SubmissionUnknownError`` rather than risk a duplicate, unlike upstream's client.
"""

from __future__ import annotations

import socket
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import attrs
import ormsgpack
import trio

from spider.client._config import DEFAULT_STORAGE, ClientConfig
from spider.client._job import JobBuilder, JobDescription
from spider.client._progress import JobProgress, ProgressCallback
from spider.client._state import JobState
from spider.client._submitted import JobRef, SubmittedJob, as_submitted
from spider.client.errors import (
    ClientError,
    JobCancelledError,
    JobFailedError,
    JobNotFoundError,
    JobStateError,
    OutputDecodeError,
    RequestRejectedError,
    ResourceGroupError,
    StorageServerError,
    StorageUnavailableError,
    SubmissionUnknownError,
)
from spider.core.errors import CodecError
from spider.core.ids import JobId, ResourceGroupId, SessionId
from spider.core.task_outputs import decode_task_outputs
from spider.proto import common
from spider.proto import storage as storage_pb
from spider.proto.spider_py import status as status_pb
from spider.rpc import (
    AlreadyExistsError,
    Channel,
    Endpoint,
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    RpcError,
    UnaryMethod,
    UnauthenticatedError,
    UnimplementedError,
    connect_channel,
    has_rpc_bridge,
    open_rpc_bridge,
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
class ClusterDetails:
    """What Spider-py's ``ClusterStatusService`` extension adds (see docs/storage.md)."""

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


@attrs.define(eq=False)
class SpiderClient:
    """A Trio client of one storage service; get one from ``open_client``."""

    channel: Channel
    config: ClientConfig

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

    async def submit(self, job: JobDescription | JobBuilder, resource_group: int) -> SubmittedJob:
        """Register ``job`` (it stays Ready until ``start``); return its handle."""
        description = job.build() if isinstance(job, JobBuilder) else job
        graph_bytes, input_bytes = description.encode()
        request = storage_pb.RegisterJobRequest(
            resource_group_id=resource_group,
            compressed_serialized_task_graph=graph_bytes,
            compressed_serialized_inputs=input_bytes,
        )
        reply = await self._create("RegisterJob", _Orchestration.register_job, request)
        return SubmittedJob(
            JobId(reply.job_id),
            description.output_annotations,
            description.output_labels,
            len(description.graph),
        )

    async def start(self, job: JobRef) -> JobState:
        """Start a Ready job (Running); ``JobStateError`` if it was already started."""
        job_id = as_submitted(job).id
        request = storage_pb.JobIdRequest(job_id=job_id)
        delays = self.config.retry.delays()
        ambiguous = False
        while True:
            try:
                reply = await self.channel.call(
                    _Orchestration.start_job, request, deadline=self.config.call_deadline
                )
            except FailedPreconditionError as error:
                if ambiguous:
                    # An attempt whose answer was lost may have started it; then this is fine.
                    state = await self.state(job_id)
                    if state is not JobState.READY:
                        return state
                raise self._translate(error, "StartJob", job_id) from error
            except RpcError as error:
                delay = next(delays, None) if error.is_transient else None
                if delay is None:
                    raise self._translate(error, "StartJob", job_id) from error
                ambiguous = True
                await trio.sleep(delay)
            else:
                return JobState.from_proto(reply.state)

    async def cancel(self, job: JobRef) -> JobState:
        """Cancel a job; return CleanupReady (its cleanup task runs next) or Cancelled.

        Cancelling a job that is already cancelled or over answers its state; a job whose tasks
        all succeeded and that has no cleanup task cannot be cancelled (``JobStateError``).
        """
        job_id = as_submitted(job).id
        reply = await self._read(
            "CancelJob", job_id, _Orchestration.cancel_job, storage_pb.JobIdRequest(job_id=job_id)
        )
        return JobState.from_proto(reply.state)

    async def state(self, job: JobRef) -> JobState:
        """The job's current state."""
        job_id = as_submitted(job).id
        reply = await self._read(
            "GetJobState",
            job_id,
            _Orchestration.get_job_state,
            storage_pb.JobIdRequest(job_id=job_id),
        )
        return JobState.from_proto(reply.state)

    async def wait(self, job: JobRef, *, on_progress: ProgressCallback | None = None) -> JobState:
        """Poll the job's state until it is terminal and return that state.

        ``on_progress`` gets a ``JobProgress`` after every poll. There is no timeout: wrap the
        call in ``trio.fail_after`` or ``trio.move_on_after`` to bound it.
        """
        submitted = as_submitted(job)
        started = time.monotonic()
        delays = self.config.poll.delays()
        previous: JobState | None = None
        polls = 0
        # Polling, because Spider's protocol has no way to subscribe to a job's state.
        while True:
            state = await self.state(submitted.id)
            polls += 1
            if on_progress is not None:
                on_progress(
                    JobProgress(
                        submitted.id,
                        state,
                        previous,
                        time.monotonic() - started,
                        polls,
                        submitted.num_tasks,
                    )
                )
            if state.is_terminal:
                return state
            previous = state
            await trio.sleep(next(delays, self.config.poll.cap))

    async def raw_outputs(self, job: JobRef) -> list[bytes]:
        """A Succeeded job's outputs as msgpack payloads, in graph-output order."""
        job_id = as_submitted(job).id
        reply = await self._read(
            "GetJobOutputs",
            job_id,
            _Orchestration.get_job_outputs,
            storage_pb.JobIdRequest(job_id=job_id),
        )
        try:
            return decode_task_outputs(reply.serialized_outputs)
        except CodecError as exc:
            raise OutputDecodeError(
                f"job {job_id}: storage sent unreadable outputs: {exc}"
            ) from exc

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
        submitted = await self.submit(job, resource_group)
        await self.start(submitted)
        state = await self.wait(submitted, on_progress=on_progress)
        if state is JobState.FAILED:
            raise JobFailedError(submitted.id, await self.error(submitted))
        if state is JobState.CANCELLED:
            raise JobCancelledError(submitted.id)
        return await self.outputs(submitted)

    # --- cluster -----------------------------------------------------------------------------

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

    async def _create(self, operation: str, method: UnaryMethod[Any, _T], request: Any) -> _T:
        delays = self.config.retry.delays()
        while True:
            try:
                return await self.channel.call(method, request, deadline=self.config.call_deadline)
            except RpcError as error:
                if not error.is_transient:
                    raise self._translate(error, operation, None) from error
                if not _never_sent(error):
                    raise SubmissionUnknownError(
                        f"{operation} to storage at {self.endpoint} failed after it may have "
                        f"been received ({error}); storage may or may not have done it, and "
                        "retrying could do it twice. Check before retrying"
                    ) from error
                delay = next(delays, None)
                if delay is None:
                    raise self._translate(error, operation, None) from error
                await trio.sleep(delay)

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
        if isinstance(error, UnauthenticatedError):
            return ResourceGroupError(
                f"{operation}: {error.message}: the resource group does not exist or the "
                "password is wrong; create one with add_resource_group"
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


def _job_counts(counts: Sequence[status_pb.JobStateCount]) -> dict[JobState, int]:
    return {JobState.from_proto(entry.state): entry.count for entry in counts}


def _never_sent(error: RpcError) -> bool:
    # The channel chains the transport exception: these two happen before any byte is sent.
    return isinstance(error.__cause__, ConnectionRefusedError | socket.gaierror)


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

    Opens the RPC bridge for the block unless the caller already has one open. Connecting is
    lazy: an unreachable storage shows on the first call, as ``StorageUnavailableError``.
    """
    endpoint = Endpoint.parse(storage) if isinstance(storage, str) else storage
    config = config or ClientConfig()
    if has_rpc_bridge():
        async with connect_channel(endpoint, config.rpc) as channel:
            yield SpiderClient(channel, config)
    else:
        async with open_rpc_bridge(), connect_channel(endpoint, config.rpc) as channel:
            yield SpiderClient(channel, config)
