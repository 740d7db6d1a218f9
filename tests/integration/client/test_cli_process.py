"""``python -m spider.cli`` as a subprocess against ``python -m spider.storage`` as a subprocess."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio

from spider.cli import CliExit
from spider.rpc import Endpoint, connect_channel
from tests.fake_em import FakeEm, tdl_runner

from .conftest import TASKS

LIMIT = 60  # seconds; bounds a hang only

JOB = {
    "graph": {
        "schema_version": "0.1.0",
        "tasks": [
            {
                "tdl_context": {"package": "tests", "task_func": "math::add"},
                "inputs": [{"Value": {"Primitive": {"Int": "Int64"}}}] * 2,
                "outputs": [{"Value": {"Primitive": {"Int": "Int64"}}}],
                "input_sources": None,
            }
        ],
        "commit_task": None,
        "cleanup_task": None,
    },
    "inputs": [20, 22],
}


@asynccontextmanager
async def storage_subprocess(directory: Path, *options: str) -> AsyncIterator[int]:
    """A storage subprocess on SQLite; yields its port, read from its JSON startup log."""
    process = await trio.lowlevel.open_process(
        [
            sys.executable,
            "-m",
            "spider.storage",
            "--port",
            "0",
            "--data-dir",
            str(directory),
            *options,
        ],
        stderr=subprocess.PIPE,
    )
    assert process.stderr is not None
    try:
        with trio.fail_after(LIMIT):
            buffer = b""
            port = None
            while port is None:
                chunk = await process.stderr.receive_some()
                assert chunk, f"storage exited before serving: {buffer.decode()}"
                buffer += chunk
                *lines, rest = buffer.split(b"\n")
                buffer = rest
                for line in lines:
                    record = json.loads(line)
                    if "port" in record and "listening" in record.get("message", ""):
                        port = int(record["port"])
        yield port
    finally:
        process.send_signal(signal.SIGTERM)
        with trio.fail_after(LIMIT):
            await process.wait()


@pytest.fixture
async def storage_process(tmp_path: Path) -> AsyncIterator[int]:
    async with storage_subprocess(tmp_path) as port:
        yield port


@pytest.fixture
def job_file(tmp_path: Path) -> Path:
    """``JOB`` in a file, as ``spider submit`` reads it."""
    path = tmp_path / "job.json"
    path.write_text(json.dumps(JOB))
    return path


async def spider_cli(port: int, *args: str) -> tuple[int, Any]:
    result = await trio.run_process(
        [sys.executable, "-m", "spider.cli", "--storage", f"127.0.0.1:{port}", "--json", *args],
        capture_stdout=True,
        capture_stderr=True,
        check=False,
    )
    stream = result.stdout if result.stdout.strip() else result.stderr
    return result.returncode, json.loads(stream)


async def test_submit_state_and_outputs_as_json(storage_process: int, tmp_path: Path) -> None:
    port = storage_process
    job_file = tmp_path / "job.json"
    job_file.write_text(json.dumps(JOB))
    with trio.fail_after(LIMIT):
        code, submitted = await spider_cli(port, "submit", str(job_file))
        assert code == CliExit.OK, submitted
        assert submitted["state"] == "Running"
        assert submitted["num_tasks"] == 1
        job_id = submitted["job_id"]

        code, state = await spider_cli(port, "state", str(job_id))
        assert (code, state) == (CliExit.OK, {"job_id": job_id, "state": "Running"})
        code, refused = await spider_cli(port, "outputs", str(job_id))
        assert code == CliExit.WRONG_STATE
        assert refused["kind"] == "wrong_state"

        async with (
            connect_channel(Endpoint("127.0.0.1", port)) as channel,
        ):
            em = FakeEm(channel, tdl_runner(TASKS))
            await em.register()
            await em.run_until(job_id)

        code, outputs = await spider_cli(port, "outputs", str(job_id))
        assert (code, outputs) == (CliExit.OK, {"job_id": job_id, "outputs": [42]})
        code, watched = await spider_cli(port, "watch", str(job_id))
        assert code == CliExit.OK
        assert watched == {"job_id": job_id, "state": "Succeeded", "outputs": [42]}
        code, missing = await spider_cli(port, "state", "999")
        assert code == CliExit.NOT_FOUND
        assert "job 999 not found" in missing["error"]
        code, status = await spider_cli(port, "status")
        assert code == CliExit.OK
        assert status["reachable"] is True
        assert status["not_exposed"] == []
        [em_status] = status["execution_managers"]["listed"]
        assert em_status["id"] == em.em_id
        assert em_status["alive"] is True
        assert em_status["running_task_instances"] == 0
        assert status["execution_managers"]["alive"] == 1
        assert {lane: queue["depth"] for lane, queue in status["queues"].items()} == {
            "task": 0,
            "commit": 0,
            "cleanup": 0,
        }
        assert status["live_task_instances"] == 0
        assert status["database"]["writable"] is True
        assert status["database"]["problem"] == ""
        assert status["jobs"]["cached"] == {"Succeeded": 1}
        assert status["jobs"]["stored"] == {"Succeeded": 1}


async def test_a_bad_description_is_a_usage_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**JOB, "inputs": [1]}))
    with trio.fail_after(LIMIT):
        code, error = await spider_cli(1, "submit", str(bad))
        assert code == CliExit.USAGE
        assert "takes 2 job input(s)" in error["error"]


async def test_job_commands_send_the_group_password_file(tmp_path: Path) -> None:
    """Against a storage that requires group credentials: ``submit --password`` uses the new
    group's password; later commands need ``--group-password-file`` (or its variable)."""
    config = tmp_path / "storage.yaml"
    config.write_text("security:\n  require_group_credentials: true\n")
    job_file = tmp_path / "job.json"
    job_file.write_text(json.dumps(JOB))
    password_file = tmp_path / "password"
    password_file.write_text("s3cret\n")
    wrong_file = tmp_path / "wrong"
    wrong_file.write_text("guess\n")
    async with storage_subprocess(tmp_path, "--config", str(config)) as port:
        with trio.fail_after(LIMIT):
            code, submitted = await spider_cli(
                port, "submit", str(job_file), "--password", "s3cret", "--no-start"
            )
            assert code == CliExit.OK, submitted
            job_id = str(submitted["job_id"])

            code, refused = await spider_cli(port, "state", job_id)
            assert code == CliExit.REFUSED, refused
            assert "resource group credential" in refused["error"]

            code, refused = await spider_cli(
                port, "--group-password-file", str(wrong_file), "cancel", job_id
            )
            assert code == CliExit.REFUSED, refused

            code, state = await spider_cli(
                port, "--group-password-file", str(password_file), "state", job_id
            )
            assert (code, state["state"]) == (CliExit.OK, "Ready"), state


async def test_a_job_submitted_without_start_is_started_by_spider_start(
    storage_process: int, job_file: Path
) -> None:
    port = storage_process
    with trio.fail_after(LIMIT):
        code, submitted = await spider_cli(port, "submit", "--no-start", str(job_file))
        assert (code, submitted["state"]) == (CliExit.OK, "Ready")
        job_id = str(submitted["job_id"])
        assert (await spider_cli(port, "state", job_id))[1]["state"] == "Ready"
        code, started = await spider_cli(port, "start", job_id)
        assert (code, started["state"]) == (CliExit.OK, "Running")
        assert (await spider_cli(port, "state", job_id))[1]["state"] == "Running"
        code, again = await spider_cli(port, "start", job_id)
        assert code == CliExit.WRONG_STATE, again


@pytest.mark.parametrize(
    ("options", "environ", "source"),
    [
        (["--storage", "127.0.0.1:{port}"], {}, "from --storage"),
        ([], {"SPIDER_STORAGE": "127.0.0.1:{port}"}, "from $SPIDER_STORAGE"),
    ],
)
async def test_an_unreachable_storage_is_one_line_naming_the_address_and_its_source(
    options: list[str], environ: dict[str, str], source: str
) -> None:
    with socket.socket() as closed:  # a port nothing listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    env = {key: value for key, value in os.environ.items() if key != "SPIDER_STORAGE"}
    env |= {key: value.format(port=port) for key, value in environ.items()}
    with trio.fail_after(LIMIT):
        result = await trio.run_process(
            [sys.executable, "-m", "spider.cli", *(o.format(port=port) for o in options), "status"],
            capture_stdout=True,
            capture_stderr=True,
            check=False,
            env=env,
        )
    assert result.returncode == CliExit.UNREACHABLE
    lines = result.stderr.decode().strip().splitlines()
    # One line, no retry warnings before it: the first call is not retried.
    assert len(lines) == 1, lines
    assert f"cannot reach storage at 127.0.0.1:{port} ({source})" in lines[0]


async def test_spider_jobs_lists_filters_and_refuses_bad_filters(
    storage_process: int, job_file: Path
) -> None:
    port = storage_process
    with trio.fail_after(LIMIT):
        ids = []
        for start in (False, True, False):
            options = [] if start else ["--no-start"]
            code, submitted = await spider_cli(port, "submit", *options, str(job_file))
            assert code == CliExit.OK, submitted
            ids.append(submitted["job_id"])
        code, listed = await spider_cli(port, "jobs")
        assert code == CliExit.OK, listed
        assert [job["job_id"] for job in listed["jobs"]] == ids[::-1]
        assert listed["more"] is False
        code, ready = await spider_cli(port, "jobs", "--state", "ready", "--since", "1h")
        assert [job["job_id"] for job in ready["jobs"]] == [ids[2], ids[0]]
        assert {job["state"] for job in ready["jobs"]} == {"Ready"}
        code, newest = await spider_cli(port, "jobs", "--limit", "2")
        assert ([job["job_id"] for job in newest["jobs"]], newest["more"]) == (ids[:0:-1], True)
        for bad in (["--state", "Sleeping"], ["--since", "yesterday"], ["--limit", "0"]):
            code, refused = await spider_cli(port, "jobs", *bad)
            assert code == CliExit.USAGE, (bad, refused)


async def test_spider_dashboard_serves_the_api_for_this_storage_until_ctrl_c(
    storage_process: int, job_file: Path
) -> None:
    port = storage_process
    with trio.fail_after(LIMIT):
        code, submitted = await spider_cli(port, "submit", "--no-start", str(job_file))
        assert code == CliExit.OK
        process = await trio.lowlevel.open_process(
            [
                sys.executable,
                "-m",
                "spider.cli",
                "--storage",
                f"127.0.0.1:{port}",
                "--json",
                "dashboard",
                "--port",
                "0",
            ],
            stdout=subprocess.PIPE,
        )
        assert process.stdout is not None
        try:
            line = b""
            while not line.endswith(b"\n"):
                chunk = await process.stdout.receive_some(1)
                assert chunk, "spider dashboard exited before serving"
                line += chunk
            url = json.loads(line)["dashboard"]
            listed = json.loads(await trio.to_thread.run_sync(_http_get, f"{url}api/jobs"))
            ready = json.loads(await trio.to_thread.run_sync(_http_get, f"{url}readyz"))
            page = await trio.to_thread.run_sync(_http_get, url)
        finally:
            process.send_signal(signal.SIGINT)
            status = await process.wait()
    assert [job["job_id"] for job in listed["jobs"]] == [submitted["job_id"]]
    assert ready == {"conditions": {"storage": None}, "ready": True}
    assert b'<script src="/static/app.js">' in page
    assert status == CliExit.OK


def _http_get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=LIMIT) as reply:
        body: bytes = reply.read()
        return body
