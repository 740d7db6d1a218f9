"""``StderrForwarder`` over in-memory streams: record format, attribution, caps, ending."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

import pytest
import trio
import trio.testing

from spider.core import JobId, TaskId, TaskInstanceId
from spider.em.pool._forwarder import StderrForwarder, TaskLabels

LOGGER_NAME = "spider.em.executor"


def forwarder_on(stream: trio.abc.ReceiveStream, **overrides: Any) -> StderrForwarder:
    settings: dict[str, Any] = {
        "executor_id": 5,
        "slot": 1,
        "max_line_bytes": 64,
        "lines_per_second": 1000.0,
        "burst_lines": 1000,
        **overrides,
    }
    return StderrForwarder(stream, **settings)


async def forward(chunks: Sequence[bytes], **overrides: Any) -> StderrForwarder:
    """Run a forwarder over ``chunks`` to end-of-file."""
    send, receive = trio.testing.memory_stream_one_way_pair()
    forwarder = forwarder_on(receive, **overrides)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(forwarder.run)
        for chunk in chunks:
            await send.send_all(chunk)
        await send.aclose()
    return forwarder


def records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.name == LOGGER_NAME]


def fields(record: logging.LogRecord) -> dict[str, Any]:
    return vars(record)


@pytest.fixture(autouse=True)
def _capture_info(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER_NAME)


async def test_a_text_line_is_an_info_record_tagged_with_executor_and_slot(
    caplog: pytest.LogCaptureFixture,
) -> None:
    forwarder = await forward([b"hello ", b"world\n"])
    (record,) = records(caplog)
    assert (record.levelno, record.getMessage()) == (logging.INFO, "hello world")
    assert fields(record)["executor_id"] == 5
    assert fields(record)["slot"] == 1
    assert "job_id" not in fields(record)
    assert "executor" not in fields(record)
    assert forwarder.lines_forwarded == 1
    assert forwarder.finished


async def test_lines_carry_the_task_they_were_read_under(caplog: pytest.LogCaptureFixture) -> None:
    send, receive = trio.testing.memory_stream_one_way_pair()
    forwarder = forwarder_on(receive)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(forwarder.run)
        forwarder.attribute_to(TaskLabels(JobId(42), TaskId.COMMIT, TaskInstanceId(9)))
        await send.send_all(b"during\n")
        await trio.testing.wait_all_tasks_blocked()
        forwarder.attribute_to(None)
        await send.send_all(b"after\n")
        await send.aclose()
    during, after = records(caplog)
    assert during.getMessage() == "during"
    assert {key: fields(during)[key] for key in ("job_id", "task_id", "task_instance_id")} == {
        "job_id": 42,
        "task_id": "Commit",
        "task_instance_id": 9,
    }
    assert after.getMessage() == "after"
    assert "job_id" not in fields(after)


async def test_a_json_line_is_nested_with_its_level_and_message(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ours = {"timestamp": "t", "level": "WARNING", "logger": "spider.executor", "message": "hi"}
    upstream = {"timestamp": "t", "level": "ERROR", "fields": {"message": "boom", "x": 1}}
    odd = {"level": 7, "message": ["not", "text"]}
    lines = [json.dumps(ours), json.dumps(upstream), json.dumps(odd), "[1, 2]", "{not json"]
    await forward([("\n".join(lines) + "\n").encode()], max_line_bytes=1024)
    first, second, third, array, broken = records(caplog)
    assert (first.levelno, first.getMessage(), fields(first)["executor"]) == (
        logging.WARNING,
        "hi",
        ours,
    )
    assert (second.levelno, second.getMessage(), fields(second)["executor"]) == (
        logging.ERROR,
        "boom",
        upstream,
    )
    assert (third.levelno, third.getMessage()) == (logging.INFO, json.dumps(odd))
    assert fields(third)["executor"] == odd
    for text_line in (array, broken):
        assert text_line.levelno == logging.INFO
        assert "executor" not in fields(text_line)
    assert (array.getMessage(), broken.getMessage()) == ("[1, 2]", "{not json")


async def test_invalid_utf8_is_replaced_and_the_forwarder_keeps_going(
    caplog: pytest.LogCaptureFixture,
) -> None:
    forwarder = await forward([b"\xff\xfebad\n", b"\xc3", b"\xa9t\xc3\n", b"fine\n"])
    assert [record.getMessage() for record in records(caplog)] == [
        "\ufffd\ufffdbad",
        "\u00e9t\ufffd",
        "fine",
    ]
    assert forwarder.lines_forwarded == 3


async def test_empty_lines_are_not_forwarded(caplog: pytest.LogCaptureFixture) -> None:
    await forward([b"\n\r\n\nx\n"])
    assert [record.getMessage() for record in records(caplog)] == ["x"]


async def test_long_lines_are_truncated_marked_and_counted_in_one_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    long_json = json.dumps({"message": "y" * 100})
    forwarder = await forward(
        [b"x" * 100 + b"\n" + long_json.encode() + b"\n" + b"short\n"], max_line_bytes=16
    )
    first, second, third, warning = records(caplog)
    assert (first.getMessage(), fields(first)["truncated_bytes"]) == ("x" * 16, 84)
    # A cut JSON line is no longer JSON: it goes out as text.
    assert second.getMessage() == long_json[:16]
    assert "executor" not in fields(second)
    assert third.getMessage() == "short"
    assert "truncated_bytes" not in fields(third)
    assert warning.levelno == logging.WARNING
    assert warning.getMessage() == "Truncated 2 executor stderr lines longer than 16 bytes."
    assert (fields(warning)["lines_truncated"], fields(warning)["max_line_bytes"]) == (2, 16)
    assert forwarder.lines_truncated == 2


async def test_lines_over_the_rate_cap_are_dropped_and_counted_at_most_once_a_second(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    send, receive = trio.testing.memory_stream_one_way_pair()
    forwarder = forwarder_on(receive, lines_per_second=10.0, burst_lines=5)
    burst = b"".join(b"line %d\n" % n for n in range(20))

    def dropped() -> list[int]:
        return [
            fields(record)["lines_dropped"]
            for record in records(caplog)
            if record.levelno == logging.WARNING
        ]

    async with trio.open_nursery() as nursery:
        nursery.start_soon(forwarder.run)
        await send.send_all(burst)
        await trio.testing.wait_all_tasks_blocked()
        # The first loss is reported at once.
        assert dropped() == [15]
        await trio.sleep(0.5)
        await send.send_all(burst[: 10 * 7])  # 10 lines; 5 tokens came back in 0.5 s
        await trio.testing.wait_all_tasks_blocked()
        assert dropped() == [15]  # the next report waits for its interval...
        await trio.sleep(0.6)
        assert dropped() == [15, 5]  # ...and comes without waiting for another line
        await send.aclose()
    infos = [r.getMessage() for r in records(caplog) if r.levelno == logging.INFO]
    assert infos == [f"line {n}" for n in range(5)] * 2
    assert (forwarder.lines_forwarded, forwarder.lines_dropped) == (10, 20)
    (first_warning, *_) = (r for r in records(caplog) if r.levelno == logging.WARNING)
    assert first_warning.getMessage() == (
        "Dropped 15 executor stderr lines over the rate cap of 10 lines/s."
    )


async def test_stop_within_ends_a_stream_that_never_closes(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    send, receive = trio.testing.memory_stream_one_way_pair()
    forwarder = forwarder_on(receive)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(forwarder.run)
        await send.send_all(b"partial line without newline")
        await trio.testing.wait_all_tasks_blocked()
        started = trio.current_time()
        forwarder.stop_within(2.0)
    assert trio.current_time() - started == pytest.approx(2.0)
    partial, warning = records(caplog)
    assert partial.getMessage() == "partial line without newline"
    assert warning.getMessage().startswith("Stopped forwarding executor stderr")
    assert forwarder.finished
    with pytest.raises(trio.BrokenResourceError):
        await send.send_all(b"more\n")  # the forwarder closed its end


async def test_wait_caught_up_returns_once_finished_or_without_a_pipe() -> None:
    forwarder = await forward([b"x\n"])
    assert not forwarder.has_unread()
    with trio.fail_after(1):
        await forwarder.wait_caught_up()
