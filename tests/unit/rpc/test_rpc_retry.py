"""``retry_transient`` under Trio's autojump clock: exact retry times, what stops retrying."""

from __future__ import annotations

import logging

import pytest
import trio
import trio.testing

from spider import rpc
from spider.core.backoff import Backoff

POLICY = Backoff(initial=1.0, multiplier=2.0, cap=3.0)


class FlakyCall:
    """Fails with the given errors in turn, then answers ``"done"``; records when it was called."""

    def __init__(self, *failures: Exception) -> None:
        self._failures = list(failures)
        self.called_at: list[float] = []

    async def __call__(self, request: str) -> str:
        self.called_at.append(trio.current_time())
        await trio.lowlevel.checkpoint()
        if self._failures:
            raise self._failures.pop(0)
        return f"done {request}"


async def test_transient_errors_are_retried_at_the_backoff_times(
    autojump_clock: trio.testing.MockClock,
) -> None:
    call = FlakyCall(
        rpc.UnavailableError("connection refused"),
        rpc.DeadlineExceededError("too slow"),
        rpc.UnavailableError("connection reset"),
        rpc.UnavailableError("connection reset"),
    )

    result = await rpc.retry_transient(call, "x", backoff=POLICY)

    assert result == "done x"
    # Delays 1, 2, then capped at 3 twice.
    assert call.called_at == [0.0, 1.0, 3.0, 6.0, 9.0]


@pytest.mark.parametrize(
    "error",
    [
        rpc.NotFoundError("stale session"),
        rpc.FailedPreconditionError("job is not running"),
        rpc.InternalError("storage service internal error"),
        rpc.UnknownError("?"),
    ],
    ids=lambda error: type(error).__name__,
)
async def test_a_non_transient_error_stops_at_once(
    autojump_clock: trio.testing.MockClock, error: rpc.RpcError
) -> None:
    call = FlakyCall(rpc.UnavailableError("refused"), error)

    with pytest.raises(type(error)) as caught:
        await rpc.retry_transient(call, "x", backoff=POLICY)

    assert caught.value is error
    assert call.called_at == [0.0, 1.0]


async def test_foreign_exceptions_are_not_retried(autojump_clock: trio.testing.MockClock) -> None:
    call = FlakyCall(ValueError("a bug"))

    with pytest.raises(ValueError, match="a bug"):
        await rpc.retry_transient(call, "x", backoff=POLICY)

    assert call.called_at == [0.0]


async def test_the_last_transient_error_propagates_when_attempts_run_out(
    autojump_clock: trio.testing.MockClock,
) -> None:
    last = rpc.UnavailableError("still down")
    call = FlakyCall(rpc.UnavailableError("down"), rpc.UnavailableError("down"), last)

    with pytest.raises(rpc.UnavailableError) as caught:
        await rpc.retry_transient(call, "x", backoff=Backoff(initial=1.0, cap=3.0, max_attempts=3))

    assert caught.value is last
    assert call.called_at == [0.0, 1.0, 3.0]


async def test_each_retry_is_logged_with_its_fields(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    call = FlakyCall(
        rpc.UnavailableError("refused", method="SchedulerServiceStub.heartbeat"),
        rpc.DeadlineExceededError("slow", method="SchedulerServiceStub.heartbeat"),
    )

    await rpc.retry_transient(call, "x", backoff=POLICY, what="scheduler heartbeat")

    records = [record for record in caplog.records if record.name == "spider.rpc"]
    assert [record.levelno for record in records] == [logging.WARNING, logging.WARNING]
    assert [record.__dict__["rpc_attempt"] for record in records] == [1, 2]
    assert [record.__dict__["retry_delay_s"] for record in records] == [1.0, 2.0]
    assert [record.__dict__["rpc_status"] for record in records] == [
        "UNAVAILABLE",
        "DEADLINE_EXCEEDED",
    ]
    assert records[0].getMessage() == (
        "scheduler heartbeat failed on attempt 1 "
        "(SchedulerServiceStub.heartbeat failed with UNAVAILABLE: refused); retrying in 1.000 s"
    )


async def test_cancellation_during_the_wait_stops_retrying(
    autojump_clock: trio.testing.MockClock,
) -> None:
    call = FlakyCall(*[rpc.UnavailableError("down")] * 10)

    with trio.move_on_after(5.5):
        await rpc.retry_transient(call, "x", backoff=POLICY)

    assert call.called_at == [0.0, 1.0, 3.0]
    assert trio.current_time() == 5.5
