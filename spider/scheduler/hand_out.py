"""``hand_out``: what ``NextTask`` and Spider-py's ``NextTasks`` both do with an EM's long poll."""

from __future__ import annotations

import functools
from collections.abc import Iterable

from spider.core.assignment import ConsumedAssignment
from spider.core.ids import ExecutionManagerId
from spider.rpc import on_undelivered
from spider.scheduler.assignment import IssuedAssignment
from spider.scheduler.dispatch_queue import DispatchQueue
from spider.scheduler.em_registry import ExecutionManagerRegistry


async def hand_out(
    queue: DispatchQueue,
    registry: ExecutionManagerRegistry,
    em_id: ExecutionManagerId,
    acknowledged: Iterable[ConsumedAssignment],
    wait: float,
    max_tasks: int,
) -> list[IssuedAssignment]:
    """Acknowledge ``acknowledged``, wait up to ``wait`` seconds for one assignment, then take
    whatever else is queued, up to ``max_tasks``; each is recorded as ``em_id``'s.

    Empty when nothing came in time. If the answer carrying them does not leave the server
    (the call was cancelled or its stream reset once this returned), all of them are
    rescheduled at once.
    """
    for record in acknowledged:
        registry.acknowledge(em_id, record)
    first = await queue.take(wait)
    if first is None:
        return []
    # From here to the return, no checkpoint: a cancelled call cannot lose what it took.
    taken = [first]
    while len(taken) < max_tasks and (more := queue.take_nowait()) is not None:
        taken.append(more)
    for assignment in taken:
        registry.assign(em_id, assignment)
    on_undelivered(functools.partial(_take_back, registry, em_id, taken))
    return taken


def _take_back(
    registry: ExecutionManagerRegistry,
    em_id: ExecutionManagerId,
    assignments: list[IssuedAssignment],
) -> None:
    for assignment in assignments:
        registry.take_back(em_id, assignment)
