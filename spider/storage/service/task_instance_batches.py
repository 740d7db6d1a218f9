"""``TaskInstanceBatchService``: Spider-py's batched registrations and outcome reports.

Not part of Spider's protocol (``protos/spider_py/execution.proto``): Spider-py's execution
managers call it first and fall back to ``TaskInstanceManagementService`` when storage answers
UNIMPLEMENTED. Each item is handed to the single RPC's own handler, so it means exactly what that
RPC means and fails with the status code that RPC would have answered, in its own ``ItemStatus``
without failing the others. The items run concurrently: each is a separate task instance (as
if several EMs called at once), and concurrent writes share the persistence layer's commits.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Final, TypeVar

import trio

from spider.proto import common
from spider.proto import storage as storage_pb
from spider.proto.spider_py import execution as execution_pb
from spider.rpc import InvalidArgumentError, RpcError, Status
from spider.storage.service.task_instances import TaskInstanceManagementService

LOGGER: Final = logging.getLogger("spider.storage.service")

_RequestT = TypeVar("_RequestT")
_ReplyT = TypeVar("_ReplyT")


class TaskInstanceBatchService(execution_pb.TaskInstanceBatchServiceBase):
    """``RegisterTaskInstances`` and ``ReportTaskOutcomes`` over the single-item handlers."""

    def __init__(self, single: TaskInstanceManagementService) -> None:
        self._single = single

    async def register_task_instances(
        self, register_task_instances_request: execution_pb.RegisterTaskInstancesRequest
    ) -> execution_pb.RegisterTaskInstancesResponse:
        """One ``RegisterTaskInstance`` per entry; results in the request's order."""
        answers = await _each(
            "RegisterTaskInstance",
            register_task_instances_request.registrations,
            self._single.register_task_instance,
        )
        return execution_pb.RegisterTaskInstancesResponse(
            results=[_registration_result(answer) for answer in answers]
        )

    async def report_task_outcomes(
        self, report_task_outcomes_request: execution_pb.ReportTaskOutcomesRequest
    ) -> execution_pb.ReportTaskOutcomesResponse:
        """One ``ReportTaskSuccess`` or ``ReportTaskFailure`` per entry; answered once every
        accepted outcome is durable (each single handler returns only then)."""
        answers = await _each(
            "ReportTaskOutcome", report_task_outcomes_request.outcomes, self._report
        )
        return execution_pb.ReportTaskOutcomesResponse(
            statuses=[
                answer if isinstance(answer, execution_pb.ItemStatus) else _OK for answer in answers
            ]
        )

    async def _report(self, outcome: execution_pb.TaskOutcome) -> common.Void:
        which = outcome.WhichOneof("outcome")
        if which == "success":
            return await self._single.report_task_success(outcome.success)
        if which == "failure":
            return await self._single.report_task_failure(outcome.failure)
        raise InvalidArgumentError("the outcome is neither a success nor a failure")


_OK: Final = execution_pb.ItemStatus(code=Status.OK.value)


async def _each(
    operation: str,
    requests: Sequence[_RequestT],
    handle: Callable[[_RequestT], Awaitable[_ReplyT]],
) -> list[_ReplyT | execution_pb.ItemStatus]:
    """``handle`` every request concurrently; each answer is its reply or its ``ItemStatus``."""
    answers: list[_ReplyT | execution_pb.ItemStatus] = [_OK] * len(requests)

    async def one(index: int, request: _RequestT) -> None:
        try:
            answers[index] = await handle(request)
        except RpcError as error:
            answers[index] = execution_pb.ItemStatus(code=error.status.value, message=error.message)
        except Exception:
            # As ``serve`` answers a single call whose handler failed unexpectedly.
            LOGGER.exception("%s failed inside a batch; answering INTERNAL for it", operation)
            answers[index] = execution_pb.ItemStatus(
                code=Status.INTERNAL.value,
                message=f"internal error while handling {operation}; see the server's log",
            )

    async with trio.open_nursery() as nursery:
        for index, request in enumerate(requests):
            nursery.start_soon(one, index, request)
    return answers


def _registration_result(
    answer: storage_pb.RegisterTaskInstanceResponse | execution_pb.ItemStatus,
) -> execution_pb.RegistrationResult:
    if isinstance(answer, execution_pb.ItemStatus):
        return execution_pb.RegistrationResult(error=answer)
    return execution_pb.RegistrationResult(execution_context=answer.execution_context)
