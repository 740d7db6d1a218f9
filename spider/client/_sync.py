"""``SyncClient``: the blocking facade for scripts and notebooks.

Each call is one ``trio.run`` that opens a connection, makes the call and closes it. Chosen over a long-lived Trio loop in a background thread because it leaves
nothing running between calls (no thread to leak, nothing to close, safe across ``fork``), and
Ctrl-C works as in any Trio program: it cancels the call in flight, resetting its stream,
instead of leaving it running in a thread. The price is a new loopback connection per call, a
few milliseconds, small next to any job; programs making many calls should use the async
``SpiderClient``. Like any ``trio.run``, it cannot be called from inside a running Trio loop.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import attrs
import trio

from spider.client._client import ClusterStatus, JobResult, SpiderClient, open_client
from spider.client._config import DEFAULT_STORAGE, ClientConfig
from spider.client._job import JobBuilder, JobDescription
from spider.client._progress import ProgressCallback
from spider.client._submitted import JobRef, SubmittedJob
from spider.core.ids import ResourceGroupId
from spider.core.job_state import JobState
from spider.rpc import Endpoint

_T = TypeVar("_T")


@attrs.frozen
class SyncClient:
    """Blocking versions of ``SpiderClient``'s methods, for code without a Trio loop.

    Synopsis::

        client = SyncClient("127.0.0.1:50051")
        group = client.add_resource_group("my-team")
        outputs = client.run(job, group, on_progress=print)
    """

    storage: Endpoint | str = DEFAULT_STORAGE
    config: ClientConfig = attrs.Factory(ClientConfig)

    def _call(self, operation: Callable[[SpiderClient], Awaitable[_T]]) -> _T:
        async def call() -> _T:
            async with open_client(self.storage, self.config) as client:
                return await operation(client)

        return trio.run(call)

    def add_resource_group(self, external_id: str, password: bytes = b"") -> ResourceGroupId:
        """See ``SpiderClient.add_resource_group``."""
        return self._call(lambda c: c.add_resource_group(external_id, password))

    def verify_resource_group(self, group_id: int, password: bytes = b"") -> None:
        """See ``SpiderClient.verify_resource_group``."""
        self._call(lambda c: c.verify_resource_group(group_id, password))

    def submit(
        self, job: JobDescription | JobBuilder, resource_group: int, *, start: bool = False
    ) -> SubmittedJob:
        """See ``SpiderClient.submit``."""
        return self._call(lambda c: c.submit(job, resource_group, start=start))

    def start(self, job: JobRef) -> JobState:
        """See ``SpiderClient.start``."""
        return self._call(lambda c: c.start(job))

    def cancel(self, job: JobRef) -> JobState:
        """See ``SpiderClient.cancel``."""
        return self._call(lambda c: c.cancel(job))

    def state(self, job: JobRef) -> JobState:
        """See ``SpiderClient.state``."""
        return self._call(lambda c: c.state(job))

    def wait(
        self,
        job: JobRef,
        *,
        on_progress: ProgressCallback | None = None,
        timeout: float | None = None,
    ) -> JobState:
        """See ``SpiderClient.wait``; ``timeout`` seconds raise ``TimeoutError`` (trio's)."""

        async def wait(client: SpiderClient) -> JobState:
            with trio.fail_after(timeout if timeout is not None else float("inf")):
                return await client.wait(job, on_progress=on_progress)

        return self._call(wait)

    def wait_result(
        self,
        job: JobRef,
        *,
        on_progress: ProgressCallback | None = None,
        timeout: float | None = None,
    ) -> JobResult:
        """See ``SpiderClient.wait_result``; ``timeout`` as in ``wait``."""

        async def wait_result(client: SpiderClient) -> JobResult:
            with trio.fail_after(timeout if timeout is not None else float("inf")):
                return await client.wait_result(job, on_progress=on_progress)

        return self._call(wait_result)

    def raw_outputs(self, job: JobRef) -> list[bytes]:
        """See ``SpiderClient.raw_outputs``."""
        return self._call(lambda c: c.raw_outputs(job))

    def outputs(self, job: JobRef, types: Sequence[Any] | None = None) -> list[Any]:
        """See ``SpiderClient.outputs``."""
        return self._call(lambda c: c.outputs(job, types))

    def error(self, job: JobRef) -> str:
        """See ``SpiderClient.error``."""
        return self._call(lambda c: c.error(job))

    def run(
        self,
        job: JobDescription | JobBuilder,
        resource_group: int,
        *,
        on_progress: ProgressCallback | None = None,
    ) -> list[Any]:
        """See ``SpiderClient.run``."""
        return self._call(lambda c: c.run(job, resource_group, on_progress=on_progress))

    def cluster_status(self) -> ClusterStatus:
        """See ``SpiderClient.cluster_status``."""
        return self._call(lambda c: c.cluster_status())
