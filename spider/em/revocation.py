"""The revocation poller: kills the running instances storage no longer wants.

Storage revokes an instance when it drops it while the EM may still run it: its job was
cancelled or failed, or a twin instance of the same task (a soft-timeout duplicate) succeeded.
The poller long-polls Spider-py's ``WaitRevokedInstances`` (``protos/spider_py/revocation.proto``)
and hands each answer to the pool, which kills those tasks' executors; their slots go on with
replacement executors and nothing is reported for them (storage has already decided).

Each poll sends back the session and revision of the previous answer, which acknowledges it; a
lost answer is answered again. Failures are retried with the EM's backoff. A storage that answers
UNIMPLEMENTED (upstream Spider) is logged once at INFO and not asked again: revoked instances then
run to their end and their reports are refused, as upstream does. The runtime runs the poller
beside the dispatch loops, in the nursery that ends once no task runs any more.
"""

from __future__ import annotations

import logging
from typing import Final

import attrs
import trio

from spider.core.ids import ExecutionManagerId, SessionId
from spider.core.retry import FailedAttempt, retry, retry_if
from spider.em._retry import RetryPolicy
from spider.em.assignment import RevokedInstances
from spider.em.errors import EmClientError, ExtensionUnavailable
from spider.em.ports import RevocationClient, TaskPool

LOGGER: Final = logging.getLogger("spider.em")

REVOCATION_POLL_WAIT_MS: Final = 10_000
"""How long one ``WaitRevokedInstances`` may wait at storage for a revocation."""

_RETRIED: Final = retry_if(
    lambda error: isinstance(error, EmClientError) and not isinstance(error, ExtensionUnavailable)
)


@attrs.define(eq=False)
class RevocationPoller:
    """One EM's long poll of its revoked instances."""

    client: RevocationClient
    em_id: ExecutionManagerId
    policy: RetryPolicy
    wait_ms: int = REVOCATION_POLL_WAIT_MS
    _session: SessionId = attrs.field(default=SessionId(0), init=False)
    _revision: int = attrs.field(default=0, init=False)
    killed: int = attrs.field(default=0, init=False)
    """Running tasks killed for a revocation, for logs and tests."""

    async def run(
        self, pool: TaskPool, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Poll and kill until cancelled; against an upstream storage, just wait to be."""
        task_status.started()
        while True:
            try:
                answer = await retry(
                    self._poll, delays=self.policy.backoff.delays, rule=_RETRIED, on_retry=self._log
                )
            except ExtensionUnavailable as error:
                LOGGER.info(
                    "Storage does not serve Spider-py's WaitRevokedInstances; tasks of cancelled "
                    "or failed jobs run to their end: %s",
                    error,
                    extra={"em_id": self.em_id},
                )
                await trio.sleep_forever()
            self._session, self._revision = answer.session, answer.revision
            if answer.instance_ids:
                self._kill(pool, answer)

    async def _poll(self) -> RevokedInstances:
        return await self.client.wait_revoked_instances(
            self.em_id, self._session, self._revision, self.wait_ms
        )

    def _kill(self, pool: TaskPool, answer: RevokedInstances) -> None:
        killed = pool.revoke(answer.instance_ids)
        self.killed += len(killed)
        LOGGER.info(
            "Storage revoked %d task instance(s); killed the %d running here.",
            len(answer.instance_ids),
            len(killed),
            extra={
                "em_id": self.em_id,
                "revoked": list(answer.instance_ids),
                "killed": list(killed),
            },
        )

    def _log(self, failed: FailedAttempt) -> None:
        LOGGER.warning(
            "WaitRevokedInstances failed; retrying in %.3f s: %s",
            failed.delay,
            failed.error,
            extra={"em_id": self.em_id, "error": str(failed.error), "retry_delay_s": failed.delay},
        )
