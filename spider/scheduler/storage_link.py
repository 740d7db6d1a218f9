"""``StorageLink``: the scheduler's calls to storage, with storage's failures made domain errors.

Two calls: ``RegisterScheduler`` and the three lanes' polls. A lane is polled through Spider-py's
acknowledged poll (``spider_py.inbound``), which names the last answer received on the lane, so
storage offers the entries of an answer that never arrived again; against a storage that answers
it UNIMPLEMENTED (upstream Spider) through upstream's ``PollReady*Tasks``, whose lost answers
stay lost until the scheduler registers again (docs/rpc.md#spider-pys-extensions). A failure is
either
``StorageLinkLost`` (storage is down, restarting or overloaded: wait and reconnect) or
``StorageRejected`` (storage, or whatever answers at that address, refuses the request for good:
fatal).
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Iterable
from typing import Final, Protocol

import attrs

from spider.core.ids import JobId, ResourceGroupId, SchedulerId, SessionId
from spider.core.ready_task import ReadyTask
from spider.proto import storage as storage_pb
from spider.proto.spider_py import inbound as inbound_pb
from spider.rpc import (
    Endpoint,
    InvalidArgumentError,
    PermissionDeniedError,
    RpcChannel,
    RpcError,
    UnauthenticatedError,
    UnimplementedError,
)
from spider.scheduler._convert import task_id_from_proto
from spider.scheduler.assignment import NO_SESSION
from spider.scheduler.errors import SchedulerError, StorageRejected

LOGGER: Final = logging.getLogger("spider.scheduler.storage")

_FATAL: Final = (InvalidArgumentError, PermissionDeniedError, UnauthenticatedError)
"""Answers to ``RegisterScheduler`` that retrying cannot change."""


class StorageLinkLost(SchedulerError):
    """A call to storage failed in a way that may pass: reconnect and try again.

    The scheduler's view of its link to storage (unreachable, restarting, overloaded); storage's
    own ``StorageUnavailable`` is its database being down."""


class InboundLane(enum.Enum):
    """The three lanes of storage's inbound queue."""

    TASK = "task"
    COMMIT = "commit"
    CLEANUP = "cleanup"


@attrs.frozen
class StorageRegistration:
    """What ``RegisterScheduler`` answered."""

    scheduler_id: SchedulerId
    session: SessionId


@attrs.frozen
class InboundBatch:
    """One lane poll's answer: storage's session and the entries (possibly none)."""

    session: SessionId
    entries: tuple[ReadyTask, ...]


class InboundSource(Protocol):
    """What the core needs from storage (``StorageLink``, or a fake in tests)."""

    async def register(self, advertised: Endpoint) -> StorageRegistration:
        """``RegisterScheduler``."""
        ...

    async def poll(self, lane: InboundLane, max_items: int, wait_ms: int) -> InboundBatch:
        """One poll of ``lane``."""
        ...


_PROTO_LANES: Final = {
    InboundLane.TASK: inbound_pb.Lane.LANE_TASK,
    InboundLane.COMMIT: inbound_pb.Lane.LANE_COMMIT,
    InboundLane.CLEANUP: inbound_pb.Lane.LANE_CLEANUP,
}

NOTHING_RECEIVED: Final = (NO_SESSION, 0)
"""A lane's acknowledgement before its first answer with entries: no session, no batch."""

_POLL_METHODS: Final = {
    InboundLane.TASK: storage_pb.InboundQueueServiceStub.poll_ready_tasks,
    InboundLane.COMMIT: storage_pb.InboundQueueServiceStub.poll_ready_commit_tasks,
    InboundLane.CLEANUP: storage_pb.InboundQueueServiceStub.poll_ready_cleanup_tasks,
}


@attrs.define(eq=False)
class StorageLink:
    """``InboundSource`` over a channel to storage (gRPC, or in process when embedded)."""

    channel: RpcChannel
    call_deadline: float
    """Seconds each call may take, on top of a poll's wait."""
    acknowledged: dict[InboundLane, tuple[SessionId, int]] = attrs.field(
        factory=lambda: dict.fromkeys(InboundLane, NOTHING_RECEIVED)
    )
    """Per lane, the storage session and batch of the last answer received (the acknowledged
    poll sends it with the next poll of the lane)."""
    upstream_only: bool = False
    """Storage answered the acknowledged poll UNIMPLEMENTED: poll upstream's RPCs instead,
    until storage registers this scheduler in another session (it may be another build)."""
    _registered_session: SessionId = NO_SESSION

    async def register(self, advertised: Endpoint) -> StorageRegistration:
        """Register as storage's scheduler; storage then (re)sends its ready work."""
        request = storage_pb.RegisterSchedulerRequest(host=advertised.host, port=advertised.port)
        try:
            response = await self.channel.call(
                storage_pb.SchedulerRegistrationServiceStub.register_scheduler,
                request,
                deadline=self.call_deadline,
            )
        except _FATAL as error:
            hint = (
                "check security.cluster_token_file (docs/security.md)"
                if isinstance(error, UnauthenticatedError)
                else "check runtime.advertised_endpoint"
            )
            raise StorageRejected(
                f"storage refused to register this scheduler as {advertised}: {error.message}; "
                f"{hint}"
            ) from error
        except UnimplementedError as error:
            raise _not_storage(error) from error
        except RpcError as error:
            raise StorageLinkLost(f"RegisterScheduler failed: {error}") from error
        registration = response.registration
        session = SessionId(registration.session_id)
        if session != self._registered_session:
            self._registered_session = session
            self.upstream_only = False
        return StorageRegistration(SchedulerId(registration.scheduler_id), session)

    async def poll(self, lane: InboundLane, max_items: int, wait_ms: int) -> InboundBatch:
        """Take up to ``max_items`` entries of ``lane``, waiting up to ``wait_ms`` for one.

        The caller polls each lane one call at a time and takes every answer returned: that is
        what the next poll acknowledges.
        """
        if not self.upstream_only:
            try:
                return await self._poll_acknowledged(lane, max_items, wait_ms)
            except UnimplementedError as error:
                if not self.upstream_only:  # once per storage session, not once per lane
                    LOGGER.warning(
                        "storage does not serve Spider-py's acknowledged inbound poll (%s); "
                        "polling upstream's PollReady*Tasks instead: a ready-task answer lost "
                        "on the way is then lost until the scheduler registers again",
                        error.message,
                    )
                self.upstream_only = True
        return await self._poll_upstream(lane, max_items, wait_ms)

    async def _poll_acknowledged(
        self, lane: InboundLane, max_items: int, wait_ms: int
    ) -> InboundBatch:
        session, batch = self.acknowledged[lane]
        request = inbound_pb.PollReadyTasksRequest(
            lane=_PROTO_LANES[lane],
            max_items=max_items,
            wait_ms=wait_ms,
            session_id=session,
            acknowledged_batch=batch,
        )
        try:
            response = await self.channel.call(
                inbound_pb.AcknowledgedInboundQueueServiceStub.poll_ready_tasks,
                request,
                deadline=wait_ms / 1000 + self.call_deadline,
            )
        except UnimplementedError:
            raise
        except RpcError as error:
            raise StorageLinkLost(f"polling the {lane.value} lane failed: {error}") from error
        answered = SessionId(response.session_id)
        self.acknowledged[lane] = (answered, response.batch)
        return InboundBatch(answered, tuple(_entries(lane, response.tasks)))

    async def _poll_upstream(self, lane: InboundLane, max_items: int, wait_ms: int) -> InboundBatch:
        request = storage_pb.PollReadyTasksRequest(max_items=max_items, wait_ms=wait_ms)
        try:
            response = await self.channel.call(
                _POLL_METHODS[lane], request, deadline=wait_ms / 1000 + self.call_deadline
            )
        except UnimplementedError as error:
            raise _not_storage(error) from error
        except RpcError as error:
            raise StorageLinkLost(f"polling the {lane.value} lane failed: {error}") from error
        return InboundBatch(
            SessionId(response.tasks.session_id),
            tuple(_entries(lane, response.tasks.tasks)),
        )


def _not_storage(error: RpcError) -> StorageRejected:
    return StorageRejected(
        f"the server at storage_endpoint does not implement Spider's storage API "
        f"({error.method}: {error.message}); check storage_endpoint"
    )


def _entries(lane: InboundLane, tasks: Iterable[storage_pb.ReadyTask]) -> list[ReadyTask]:
    entries = []
    for task in tasks:
        task_id = task_id_from_proto(task.task_id)
        if task_id is None:
            # One malformed entry should not stop the rest of the batch from running.
            LOGGER.error(
                "storage sent an entry of job %d on the %s lane without a task id; dropped",
                task.job_id,
                lane.value,
            )
            continue
        entries.append(
            ReadyTask(ResourceGroupId(task.resource_group_id), JobId(task.job_id), task_id)
        )
    return entries
