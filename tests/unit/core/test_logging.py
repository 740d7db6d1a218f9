from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from spider.core.logging import configure_logging


@pytest.fixture
def restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.usefixtures("restore_root_logger")
def test_json_lines_carry_fields_and_exceptions() -> None:
    stream = io.StringIO()
    configure_logging(level="INFO", stream=stream)
    log = logging.getLogger("spider.test")
    log.info("task finished", extra={"job_id": 7, "task_id": "Index(3)"})
    try:
        raise ValueError("bad")
    except ValueError:
        log.exception("report failed")
    log.debug("not shown")

    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["message"] == "task finished"
    assert first["level"] == "INFO"
    assert first["logger"] == "spider.test"
    assert (first["job_id"], first["task_id"]) == (7, "Index(3)")
    assert first["timestamp"].endswith("+00:00")
    assert second["level"] == "ERROR"
    assert "ValueError: bad" in second["exception"]


@pytest.mark.usefixtures("restore_root_logger")
def test_level_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPIDER_LOG_LEVEL", "warning")
    stream = io.StringIO()
    configure_logging(stream=stream)
    logging.getLogger("spider.test").info("hidden")
    logging.getLogger("spider.test").warning("shown")
    assert [json.loads(line)["message"] for line in stream.getvalue().splitlines()] == ["shown"]


@pytest.mark.usefixtures("restore_root_logger")
def test_human_format_puts_fields_after_the_message() -> None:
    stream = io.StringIO()
    configure_logging(level="INFO", human=True, stream=stream)
    logging.getLogger("spider.test").info("started", extra={"em_id": 3})
    line = stream.getvalue().strip()
    assert line.endswith("INFO  spider.test: started em_id=3")
