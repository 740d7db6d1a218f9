"""The client's named defaults: where storage is, call deadlines, retries, polling."""

from __future__ import annotations

from typing import Final

import attrs

from spider.core.backoff import Backoff
from spider.rpc import RPC_RETRY_BACKOFF, Endpoint, RpcConfig
from spider.rpc.auth import group_metadata

DEFAULT_STORAGE: Final = Endpoint("127.0.0.1", 50051)
"""Spider's storage port on this machine."""
STORAGE_ENV: Final = "SPIDER_STORAGE"
"""The environment variable the command line reads ``HOST:PORT`` from."""

CALL_DEADLINE: Final = 30.0
"""Seconds one attempt of a call may take. RegisterJob of a very large graph is the slowest."""

POLL_BACKOFF: Final = Backoff(initial=0.005, cap=0.5, multiplier=1.5)
"""How ``wait`` polls GetJobState against a storage without Spider-py's jobs extension (with it,
``wait`` long-polls WaitForJob instead): quickly at first, so short jobs return fast (a poll after
5, 12, 24, 41, 66... ms), then every 0.5 s, which costs storage little (Spider has no push
notification of job states). The end-to-end benchmark found 20 ms doubling added up to 14 ms
to a short job's round trip."""


LONG_POLL: Final = 20.0
"""Seconds one WaitForJob long poll asks storage to wait (Spider-py's jobs extension); storage
answers as soon as the job ends, and bounds the wait by its own ``max_job_wait_sec``."""
PROGRESS_POLL: Final = 1.0
"""The long poll's wait while a progress callback watches, so a change between two non-terminal
states (Running to CommitReady) shows within about this long."""


@attrs.frozen
class GroupCredential:
    """A resource group's password, which a client sends with every call so that a storage
    with ``security.require_group_credentials`` lets it see and change that group's jobs
    (docs/security.md). A storage without the setting ignores it. ``group_id``, if given,
    names the group: a call about another group's job is then PERMISSION_DENIED rather than
    UNAUTHENTICATED."""

    password: bytes = attrs.field(repr=False)
    group_id: int | None = None


@attrs.frozen
class ClientConfig:
    """How the client talks to storage."""

    rpc: RpcConfig = attrs.Factory(RpcConfig)
    call_deadline: float = CALL_DEADLINE
    retry: Backoff = RPC_RETRY_BACKOFF
    """Retries of calls that are safe to repeat (upstream's client helper: 10 retries)."""
    poll: Backoff = POLL_BACKOFF
    """GetJobState polling, against a storage without Spider-py's jobs extension."""
    long_poll: float = LONG_POLL
    progress_poll: float = PROGRESS_POLL
    jobs_extension: bool = True
    """Use Spider-py's jobs extension (SubmitJob, WaitForJob) when storage serves it. ``False``
    makes the client use Spider's calls only, as against upstream's storage (for comparisons)."""
    group_credential: GroupCredential | None = None
    """The resource group this client acts for, if storage requires group credentials."""

    def rpc_with_credentials(self) -> RpcConfig:
        """``rpc``, plus the group credential's metadata when there is one."""
        if self.group_credential is None:
            return self.rpc
        credential = group_metadata(self.group_credential.password, self.group_credential.group_id)
        return attrs.evolve(self.rpc, metadata=(*self.rpc.metadata, *credential))
