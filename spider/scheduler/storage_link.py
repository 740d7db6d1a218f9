"""``StorageLink``: the scheduler's calls to storage, with storage's failures made domain errors.

Two calls: ``RegisterScheduler`` and the three lanes' ``PollReady*Tasks``. A failure is either
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
        return StorageRegistration(
            SchedulerId(registration.scheduler_id), SessionId(registration.session_id)
        )

    async def poll(self, lane: InboundLane, max_items: int, wait_ms: int) -> InboundBatch:
        """Take up to ``max_items`` entries of ``lane``, waiting up to ``wait_ms`` for one."""
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
