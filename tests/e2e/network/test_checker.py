"""The checker's own rules, on made-up journals and logs: it must be able to fail."""

from __future__ import annotations

import json

from tests.e2e.cluster.driver import JournalLine

from .checker import Acknowledged, acknowledged_reports, count_reruns, lost_acknowledgements


def _start(task: str, at: float) -> JournalLine:
    return JournalLine(1, task, at, "start")


def test_reruns_count_starts_beyond_the_allowed() -> None:
    journal = [_start("index:0", 1), _start("index:0", 2), _start("index:1", 1)]
    journal += [_start("index:2", 1), _start("index:2", 2), _start("index:2", 3)]
    assert count_reruns(journal, {(1, "index:2"): 2}) == 2


def test_a_start_after_an_acknowledged_success_is_a_lost_report() -> None:
    ack = Acknowledged(1, "index:0", 5.0)
    journal = [_start("index:0", 1), _start("index:0", 6)]
    assert lost_acknowledgements(journal, [ack], {}) == [(ack, journal[1])]
    assert lost_acknowledgements(journal[:1], [ack], {}) == []


def test_acknowledged_failures_of_a_failing_task_allow_its_retries() -> None:
    acks = [Acknowledged(1, "index:0", 2.0), Acknowledged(1, "index:0", 4.0)]
    journal = [_start("index:0", 1), _start("index:0", 3)]
    assert lost_acknowledgements(journal, acks, {(1, "index:0"): 1}) == []
    assert len(lost_acknowledgements([*journal, _start("index:0", 5)], acks, {(1, "index:0"): 1}))


def test_acknowledgements_are_read_from_the_ems_json_log() -> None:
    line = {
        "timestamp": "2026-01-01T00:00:01.500000+00:00",
        "message": "Task outcome reported.",
        "job_id": 3,
        "task_id": "Index(4)",
    }
    commit = {**line, "task_id": "Commit"}
    log = "\n".join([json.dumps(line), '{"message": "other"}', json.dumps(commit)])
    acks = acknowledged_reports([log])
    assert [(ack.job_id, ack.task) for ack in acks] == [(3, "index:4"), (3, "commit")]
    assert acks[0].at == 1767225601.5
