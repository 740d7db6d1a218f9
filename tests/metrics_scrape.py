"""Reading a service's ``/metrics``, ``/healthz`` and ``/readyz`` as Prometheus and a Kubernetes
probe would: plain HTTP, the text format parsed by prometheus-client's own parser."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

READY_TIMEOUT = 30.0


def get(port: int, path: str) -> tuple[int, bytes]:
    """The status and body of ``GET path`` on loopback ``port``."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of ``/metrics``: (name, sorted labels) -> value."""
    status, body = get(port, "/metrics")
    assert status == 200, body
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
    }


def sample(samples: dict[Any, float], name: str, **labels: str) -> float:
    """One sample's value; 0 if the series does not exist (yet)."""
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def wait_ready(port: int) -> dict[str, Any]:
    """Poll ``/readyz`` until it answers 200 (a service registers in the background after it
    starts listening); its report. Fails with the last report after ``READY_TIMEOUT``."""
    deadline = time.monotonic() + READY_TIMEOUT
    while True:
        status, body = get(port, "/readyz")
        report: dict[str, Any] = json.loads(body)
        if status == 200:
            return report
        assert status == 503, body
        assert time.monotonic() < deadline, f"/readyz never became ready: {report}"
        time.sleep(0.05)
