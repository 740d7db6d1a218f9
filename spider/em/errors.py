"""The errors of the execution manager: one base class, flat subclasses.

``EmClientError`` and its subclasses are what the EM's clients of storage and the scheduler raise,
after mapping gRPC status codes the way upstream Spider does (docs/upstream.md#status-codes):
the runtime decides per error whether to retry, drop and acknowledge an assignment, or stop.
The other errors end the execution manager with a non-zero exit status.
"""

from __future__ import annotations

from spider.core.errors import FatalError, SpiderError


class ExecutionManagerError(SpiderError):
    """Base class of every error of the execution manager."""


class EmClientError(ExecutionManagerError):
    """A call the EM made to storage or the scheduler failed; ``message`` is the peer's text."""

    def __init__(self, message: str, *, operation: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.operation = operation
        """The call that failed (``RegisterTaskInstance``), for logs."""

    def __str__(self) -> str:
        prefix = f"{self.operation}: " if self.operation else ""
        return f"{prefix}{type(self).__name__}: {self.message or '(no message)'}"


class StaleSessionAnswer(EmClientError):
    """Storage rejected a call made with an older session (storage restarted since).

    Storage's ``StaleSession`` refusal, as the EM receives it (NOT_FOUND)."""


class CacheStaleAnswer(EmClientError):
    """Storage no longer accepts work on this task: it ended, the job is gone, or the instance
    was removed (a duplicate, a timeout, a cancelled or failed job).

    Storage's ``CacheStale`` refusal, as the EM receives it (FAILED_PRECONDITION)."""


class InvalidInput(EmClientError):
    """Storage judged the request malformed; sending it again cannot succeed."""


class MarkedDead(EmClientError):
    """Storage has declared this execution manager dead (it missed heartbeats for too long)."""


class IllegalId(EmClientError):
    """Storage does not know this execution manager's id (or rejected the registration)."""


class TransportError(EmClientError):
    """The peer could not be reached or did not answer in time; a retry may succeed."""


class ServerError(EmClientError):
    """The peer failed internally (``INTERNAL``, ``UNKNOWN``...) or refused the call."""


class ProtocolError(EmClientError):
    """The peer answered with a message that breaks Spider's protocol (a missing field)."""


class ExtensionUnavailable(EmClientError):
    """The peer does not serve Spider-py's execution extension (it answered UNIMPLEMENTED): an
    upstream Spider service. The EM falls back to Spider's one-at-a-time RPCs."""


class LivenessLost(ExecutionManagerError, FatalError):
    """Storage's answer to a heartbeat means this execution manager must stop: it was declared
    dead, its id is unknown, or the storage session went backwards."""


class DeclaredDead(LivenessLost):
    """Storage answered a heartbeat with ``MarkedDead``: it declared this execution manager dead
    and rescheduled its work. The EM registers again under a new id (``on_declared_dead:
    rejoin``, the default) or stops (``exit``)."""


class DispatchFailed(ExecutionManagerError, FatalError):
    """A dispatch loop broke on an unexpected error (a bug); the EM stops after draining."""


class ExecutorsUnavailable(ExecutionManagerError, FatalError):
    """The task executors could not be started; check ``task_executor.bin_path``."""


class RegistrationRefused(ExecutionManagerError, FatalError):
    """Storage refused to register this execution manager (not a transient failure)."""
