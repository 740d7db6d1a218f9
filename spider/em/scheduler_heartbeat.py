"""The scheduler heartbeat: the scheduler reschedules the work of EMs it has not heard from."""

from __future__ import annotations

import logging
import math
from typing import Final, NoReturn

import trio

from spider.core.ids import ExecutionManagerId
from spider.em.errors import EmClientError
from spider.em.ports import SchedulerClient

LOGGER: Final = logging.getLogger("spider.em")


async def scheduler_heartbeat_loop(
    client: SchedulerClient,
    em_id: ExecutionManagerId,
    period: float,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> NoReturn:
    """Heartbeat at start and then on a fixed schedule of ``period`` seconds, until cancelled.

    Overrun policy: ticks missed while a heartbeat was slow are skipped, not sent in a burst.
    Failures are logged; the next tick tries again.
    """
    task_status.started()
    next_beat = trio.current_time()
    while True:
        try:
            await client.heartbeat(em_id)
        except EmClientError as error:
            LOGGER.warning(
                "Failed to heartbeat to scheduler: %s",
                error,
                extra={"em_id": em_id, "error": str(error)},
            )
        next_beat += period
        late = trio.current_time() - next_beat
        if late > 0:
            next_beat += math.ceil(late / period) * period
        await trio.sleep_until(next_beat)
