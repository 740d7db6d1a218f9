"""Outcome reports: each one a task of the runtime's reporters' nursery, retried until it lands,
stops mattering, or the shutdown drain runs out.

A report is retried while storage is unreachable (``TransportError``) and, a few times, while it
fails internally (``ServerError``). Before each attempt the report's session is checked: once
the liveness loop has seen a newer session, storage has restarted and forgotten the instance,
so the outcome is dropped (a stale outcome is never reported). Storage rejecting the report as
stale (``StaleSession``, ``CacheStale``: the instance timed out, the job ended) drops it too.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Final

import attrs
import trio

from spider.core import SessionTracker
from spider.em._retry import RetryPolicy, Superseded, call_with_retry
from spider.em.assignment import ReportTarget
from spider.em.errors import CacheStale, ClientError, StaleSession
from spider.em.pool import TaskOutcome, TaskSucceeded
from spider.em.ports import StorageClient

LOGGER: Final = logging.getLogger("spider.em")


@attrs.define(eq=False)
class Reporter:
    """Sends task outcomes to storage; one ``report`` call per outcome, each in its own task."""

    storage: StorageClient
    tracker: SessionTracker
    refresh_liveness: Callable[[], None]
    policy: RetryPolicy
    in_flight: int = attrs.field(default=0, init=False)
    """Reports started and not finished: what a shutdown drain waits for."""
    delivered: int = attrs.field(default=0, init=False)
    """Reports storage accepted."""

    async def report(self, target: ReportTarget, outcome: TaskOutcome) -> None:
        """Report ``outcome`` of ``target``; failures are logged, never raised."""
        fields = _fields(target)
        if isinstance(outcome, TaskSucceeded):
            what = "ReportTaskSuccess"

            async def send() -> None:
                await self.storage.report_success(target, outcome.outputs)
        else:
            what = "ReportTaskFailure"

            async def send() -> None:
                await self.storage.report_failure(target, outcome.message)

        self.in_flight += 1
        try:
            await call_with_retry(
                send,
                policy=self.policy,
                what=what,
                fields=fields,
                superseded=lambda: self._superseded(target),
            )
        except Superseded as stale:
            LOGGER.warning("Dropping stale task outcome: %s.", stale.reason, extra=fields)
        except StaleSession as error:
            LOGGER.warning(
                "Storage rejected the outcome as stale; dropping it: %s", error, extra=fields
            )
            self.refresh_liveness()
        except CacheStale as error:
            LOGGER.warning(
                "Storage no longer accepts this outcome; dropping it: %s", error, extra=fields
            )
        except ClientError as error:
            LOGGER.error(
                "Failed to report task outcome to storage. Dropping the report: %s",
                error,
                extra={**fields, "error": str(error)},
            )
        except trio.Cancelled:
            LOGGER.error(
                "Task outcome report abandoned: the shutdown drain ran out before storage "
                "answered.",
                extra=fields,
            )
            raise
        else:
            self.delivered += 1
            LOGGER.debug("Task outcome reported.", extra={**fields, "report": what})
        finally:
            self.in_flight -= 1

    def _superseded(self, target: ReportTarget) -> str | None:
        if self.tracker.is_stale(target.session):
            return (
                f"storage moved to session {self.tracker.current} after the task was registered "
                f"in session {target.session}"
            )
        return None


def _fields(target: ReportTarget) -> dict[str, Any]:
    return {
        "em_id": target.em_id,
        "job_id": target.job_id,
        "task_id": str(target.task_id),
        "task_instance_id": target.task_instance_id,
        "session_id": target.session,
    }
