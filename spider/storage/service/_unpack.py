"""Request unpacking shared by the storage services: proto values to domain values.

Spider decodes every request before touching its state, and a value that cannot be decoded is
``INVALID_ARGUMENT``: a ``TaskId`` without a ``kind``, an IP address that does not parse, an
empty scheduler host or a port over 65535, an id no database column can hold (storage never
issues one: a job id in the job RPCs is NOT_FOUND, as any unknown job, any other id
INVALID_ARGUMENT). Nothing else is checked here; proto3 defaults apply (an unset id is 0, which
the domain answers as unknown).
"""

from __future__ import annotations

import ipaddress
from typing import cast

from spider.core.bounds import MAX_HOST_CHARS, MAX_IP_ADDRESS_CHARS, check_length, quoted
from spider.core.ids import JobId
from spider.core.job_state import JobState
from spider.core.task_id import TaskId, TaskKind
from spider.proto import common
from spider.proto import storage as storage_pb
from spider.rpc import InvalidArgumentError, NotFoundError
from spider.storage.errors import JobNotFound

MAX_PORT = 65535
MAX_STORED_ID = (1 << 63) - 1
"""The largest id a database column holds (signed 64-bit, on SQLite and MariaDB); ids on the
wire are uint64, so a client can send larger ones."""


def stored_id(value: int, field: str) -> int:
    """``value`` if storage could have issued it, else ``InvalidArgumentError``."""
    if value > MAX_STORED_ID:
        raise InvalidArgumentError(f"{field} {value} is out of range: storage's ids are below 2^63")
    return value


def job_id_from_proto(value: int) -> JobId:
    """The job a job RPC names; an id storage could never have issued is an unknown job."""
    if value > MAX_STORED_ID:
        raise NotFoundError(str(JobNotFound(JobId(value))))
    return JobId(value)


def task_id_from_proto(message: common.TaskId | None, field: str = "task_id") -> TaskId:
    """The domain ``TaskId``; ``InvalidArgumentError`` when the message or its kind is missing."""
    if message is None or message.ByteSize() == 0:
        raise InvalidArgumentError(f"{field} is missing: set index, commit or cleanup")
    kind = message.WhichOneof("kind")
    if kind == "index":
        return TaskId.index(message.index)
    if kind == "commit":
        return TaskId.COMMIT
    if kind == "cleanup":
        return TaskId.CLEANUP
    raise InvalidArgumentError(f"{field} has no kind: set index, commit or cleanup")


def task_id_to_proto(task_id: TaskId) -> common.TaskId:
    """``common.TaskId`` with its ``kind`` set."""
    if task_id.position is not None:
        return common.TaskId(index=task_id.position)
    if task_id.kind is TaskKind.COMMIT:
        return common.TaskId(commit=common.Void())
    return common.TaskId(cleanup=common.Void())


def ip_address_from_proto(text: str) -> str:
    """``text`` if it is an IPv4 or IPv6 address, else ``InvalidArgumentError``."""
    too_long = check_length(text, MAX_IP_ADDRESS_CHARS, "ip_address")
    if too_long is not None:
        raise InvalidArgumentError(too_long)
    try:
        ipaddress.ip_address(text)
    except ValueError as exc:
        raise InvalidArgumentError(
            f"ip_address {quoted(text)} is not an IPv4 or IPv6 address"
        ) from exc
    return text


def scheduler_endpoint_from_proto(host: str, port: int) -> tuple[str, int]:
    """The scheduler's ``(host, port)``; an empty host or a port over 65535 is rejected."""
    if not host:
        raise InvalidArgumentError("the scheduler host is empty: send the host EMs should dial")
    too_long = check_length(host, MAX_HOST_CHARS, "the scheduler host")
    if too_long is not None:
        raise InvalidArgumentError(too_long)
    if not 0 <= port <= MAX_PORT:
        raise InvalidArgumentError(f"the scheduler port {port} is outside 0..{MAX_PORT}")
    return host, port


def job_state_to_proto(state: JobState) -> storage_pb.JobState:
    """The wire enum value of ``state``."""
    # The wire enum's member names are the domain enum's (READY, COMMIT_READY, ...).
    return cast("storage_pb.JobState", storage_pb.JobState.Value(state.name))


def job_state_from_proto(value: int) -> JobState:
    """The state a request names; ``InvalidArgumentError`` for UNSPECIFIED or an unknown value."""
    names = {member.name for member in JobState}
    name = storage_pb.JobState.Name(value) if value in storage_pb.JobState.values() else None
    if name not in names:
        raise InvalidArgumentError(f"job state {value} is not a state a job can be in")
    return JobState[name]
