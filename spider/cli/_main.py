"""``spider``: submit and inspect jobs on a Spider cluster from the command line."""

from __future__ import annotations

import argparse
import json
import os
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import trio
from rich.console import Group, RenderableType
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from spider.cli._dashboard import add_dashboard_command, serve_dashboard
from spider.cli._exit import CliExit, status_for
from spider.cli._job_files import load_job
from spider.cli._listings import (
    LISTING_COMMANDS,
    add_listing_commands,
    check_listing_filters,
    run_listing,
)
from spider.cli._output import Output
from spider.cli._progress_bar import progress_bar
from spider.client import (
    DEFAULT_STORAGE,
    STORAGE_ENV,
    ClientConfig,
    ClientError,
    ClusterStatus,
    DatabaseInfo,
    GroupCredential,
    JobDescription,
    JobState,
    SpiderClient,
    StorageUnavailableError,
    SubmittedJob,
    open_client,
    payload_to_json,
    status_document,
)
from spider.core.config import ConfigError
from spider.core.exception_groups import leaves_if_only
from spider.rpc import Endpoint, RpcConfig, RpcError, SecurityConfig, TlsConfig
from spider.rpc.auth import check_security

TLS_ENV: Final = {"ca": "SPIDER_TLS_CA", "cert": "SPIDER_TLS_CERT", "key": "SPIDER_TLS_KEY"}
"""The environment variables the TLS options fall back to."""
GROUP_PASSWORD_ENV: Final = "SPIDER_GROUP_PASSWORD_FILE"
"""The environment variable ``--group-password-file`` falls back to."""
MAX_PASSWORD_FILE_BYTES: Final = 4096
REACH_DEADLINE: Final = 2.0
"""Seconds the first call may take before the command says storage cannot be reached."""

_EPILOG = f"""\
Storage address: --storage, else ${STORAGE_ENV}, else {DEFAULT_STORAGE}.
TLS (docs/security.md): --tls-ca, else $SPIDER_TLS_CA, turns TLS on; --tls-cert/--tls-key
(else $SPIDER_TLS_CERT/$SPIDER_TLS_KEY) present a client certificate, for mutual TLS.
Group credential, for a storage that requires one: --group-password-file, else
$SPIDER_GROUP_PASSWORD_FILE, else the password `submit --password` creates a group with.

Exit status: 0 done (for watch and submit --wait: the job succeeded); 1 the waited-for job
failed or was cancelled; 2 bad usage or job description; 3 storage unreachable; 4 no such job;
5 the job's state does not allow the request; 6 storage refused the request otherwise;
130 interrupted. See docs/cli.md."""


def build_parser() -> argparse.ArgumentParser:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="spider",
        description="Submit, watch and inspect jobs on a Spider cluster.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--storage",
        metavar="HOST:PORT",
        help=f"storage service (default ${STORAGE_ENV} or {DEFAULT_STORAGE})",
    )
    parser.add_argument(
        "--tls-ca", metavar="FILE", help="connect with TLS, trusting this CA bundle (PEM)"
    )
    parser.add_argument("--tls-cert", metavar="FILE", help="client certificate, for mutual TLS")
    parser.add_argument("--tls-key", metavar="FILE", help="the client certificate's key")
    parser.add_argument(
        "--group-password-file",
        metavar="FILE",
        help="the resource group's password (the file's bytes, one trailing newline dropped), "
        "sent with every call to a storage that requires group credentials",
    )
    parser.add_argument("--json", action="store_true", help="print JSON on stdout, for scripts")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    submit = commands.add_parser(
        "submit",
        help="submit a job from a Python or JSON file, and start it",
        description="Register a job and start it. SOURCE is FILE.py[:FUNCTION] (FUNCTION, "
        'default `job`, returns a JobBuilder) or FILE.json ({"graph": ..., "inputs": ...}).',
    )
    submit.add_argument("source", metavar="SOURCE")
    group = submit.add_mutually_exclusive_group()
    group.add_argument("--group-id", type=int, help="an existing resource group's id")
    group.add_argument(
        "--group",
        metavar="NAME",
        help="create a resource group of this name (default: a new "
        "group named spider-cli-<random>)",
    )
    submit.add_argument("--password", default="", help="the new resource group's password")
    submit.add_argument(
        "--path",
        type=Path,
        action="append",
        default=[],
        metavar="DIR",
        help="add DIR to the import path of a Python job file (repeatable)",
    )
    submit.add_argument("--no-start", action="store_true", help="leave the job Ready")
    submit.add_argument(
        "--wait",
        action="store_true",
        help="wait for the job, with a progress bar, and print its outputs or error",
    )

    for name, text in [
        ("start", "start a job submitted with --no-start"),
        ("watch", "wait for a job to end, showing its progress"),
        ("state", "print a job's state"),
        ("outputs", "print a succeeded job's outputs"),
        ("error", "print a failed job's error message"),
        ("cancel", "cancel a job"),
    ]:
        command = commands.add_parser(name, help=text, description=text.capitalize() + ".")
        command.add_argument("job_id", type=int, metavar="JOB")
    add_listing_commands(commands)
    add_dashboard_command(commands)
    commands.add_parser(
        "status",
        help="cluster status: storage, scheduler, execution managers, queues, jobs by state",
        description="Storage's reachability and session, the registered scheduler, and, from "
        "a Spider-py storage, execution managers, inbound-queue depths and jobs by state "
        "(Spider's own storage protocol has no call for these). See docs/cli.md.",
    )
    return parser


def _status_text(status: ClusterStatus) -> RenderableType:
    shown = (
        "not implemented by this storage"
        if status.schedulers is None
        else ", ".join(f"{s.host}:{s.port} (id {s.scheduler_id})" for s in status.schedulers)
        or "none registered"
    )
    summary = Text(
        f"storage    {status.endpoint}: reachable, session {status.session_id}, "
        f"{status.round_trip_ms:.1f} ms\nschedulers {shown}"
    )
    details = status.details
    if details is None:
        return Group(
            summary,
            Text(
                "not available from this storage (it does not serve Spider-py's cluster status "
                f"extension): {', '.join(status.not_exposed)}"
            ),
        )
    summary.append(f"\ndatabase   {_database_text(details.database)}")
    ems = Table(title="execution managers", title_justify="left")
    for column in ("id", "address", "state", "last heartbeat", "running instances"):
        ems.add_column(column, justify="right" if column in ("id", "running instances") else "left")
    for em in details.execution_managers:
        ems.add_row(
            str(em.execution_manager_id),
            em.ip_address,
            "[green]alive[/green]" if em.alive else "[red]dead[/red]",
            f"{em.seconds_since_heartbeat:.1f} s ago",
            str(em.running_task_instances),
        )
    ems.caption = (
        f"{details.alive_execution_managers} alive, {details.dead_execution_managers} dead "
        f"(the {details.dead_execution_managers_listed_max} most recent dead are listed)"
    )
    queues = Table(
        title="inbound queue (ready work waiting for the scheduler)", title_justify="left"
    )
    for column in ("lane", "depth", "capacity"):
        queues.add_column(column, justify="left" if column == "lane" else "right")
    for lane, queue in details.lanes.items():
        queues.add_row(lane, str(queue.depth), str(queue.capacity))
    queues.caption = f"{details.live_task_instances} task instance(s) running"
    jobs = Table(title="jobs by state", title_justify="left")
    jobs.add_column("state")
    jobs.add_column("in the job cache", justify="right")
    jobs.add_column("in the database", justify="right")
    for state in JobState:
        cached = details.cached_jobs.get(state, 0)
        stored = details.stored_jobs.get(state, 0)
        if cached or stored:
            jobs.add_row(state.value, str(cached), str(stored))
    jobs.caption = (
        "the job cache holds unfinished jobs, and finished ones for "
        f"{details.terminated_job_retention_sec:g} s; the database holds all until its retention"
    )
    return Group(summary, ems, queues, jobs)


def _database_text(database: DatabaseInfo) -> str:
    if not database.writable:
        return (
            f"NOT WRITABLE for {database.unwritable_for_sec:.1f} s: {database.problem} "
            "(reads are served, writes are answered UNAVAILABLE and retried, no task times out)"
        )
    if database.last_outage_sec:
        return (
            f"writable (last outage: {database.last_outage_sec:.1f} s, ended "
            f"{database.since_last_outage_sec:.0f} s ago)"
        )
    return "writable"


def _outputs_text(values: Sequence[Any], labels: Sequence[str] | None) -> str:
    if not values:
        return "(no outputs)"
    lines = []
    for position, value in enumerate(values):
        label = labels[position] if labels is not None else str(position)
        lines.append(f"{escape(label)}: {escape(json.dumps(value, ensure_ascii=False))}")
    return "\n".join(lines)


async def _wait_and_report(
    client: SpiderClient, job: SubmittedJob, output: Output, document: dict[str, Any]
) -> CliExit:
    if output.as_json:
        result = await client.wait_result(job)
    else:
        with progress_bar(output.err, job.id) as on_progress:
            result = await client.wait_result(job, on_progress=on_progress)
    state = result.state
    document["state"] = state.value
    text = f"job {job.id}: {state.value}"
    if state is JobState.SUCCEEDED:
        values = [payload_to_json(p) for p in result.raw_outputs or ()]
        document["outputs"] = values
        text += "\n" + _outputs_text(values, job.output_labels)
    elif state is JobState.FAILED:
        document["error"] = message = result.error or ""
        text += f"\n{escape(message)}"
    output.result(document, text)
    return CliExit.OK if state is JobState.SUCCEEDED else CliExit.JOB_UNSUCCESSFUL


async def _submit(
    client: SpiderClient, args: argparse.Namespace, output: Output, description: JobDescription
) -> CliExit:
    if args.group_id is not None:
        group = args.group_id
    else:
        name = args.group or f"spider-cli-{uuid.uuid4().hex[:12]}"
        group = await client.add_resource_group(name, args.password.encode())
    job = await client.submit(description, group, start=not args.no_start)
    state = JobState.READY if args.no_start else JobState.RUNNING
    document: dict[str, Any] = {
        "job_id": job.id,
        "resource_group_id": group,
        "num_tasks": job.num_tasks,
        "state": state.value,
    }
    if args.wait and not args.no_start:
        if not output.as_json:
            output.err.print(f"submitted job {job.id} (resource group {group})")
        return await _wait_and_report(client, job, output, document)
    output.result(document, f"job {job.id} submitted (resource group {group}): {state.value}")
    return CliExit.OK


async def _run_command(
    client: SpiderClient,
    args: argparse.Namespace,
    output: Output,
    description: JobDescription | None,
) -> int:
    command = args.command
    if description is not None:
        return await _submit(client, args, output, description)
    if command == "status":
        status = await client.cluster_status()
        output.result(status_document(status), _status_text(status))
        return CliExit.OK
    if command in LISTING_COMMANDS:
        return await run_listing(client, args, output)
    if command == "dashboard":
        return await serve_dashboard(client, args, output)
    job = SubmittedJob(args.job_id)
    document: dict[str, Any] = {"job_id": job.id}
    if command == "watch":
        return await _wait_and_report(client, job, output, document)
    if command == "state":
        state = await client.state(job)
        document["state"] = state.value
        output.result(document, state.value)
    elif command == "start":
        state = await client.start(job)
        document["state"] = state.value
        output.result(document, f"job {job.id}: {state.value}")
    elif command == "cancel":
        state = await client.cancel(job)
        document["state"] = state.value
        output.result(document, f"job {job.id}: {state.value}")
    elif command == "outputs":
        values = [payload_to_json(p) for p in await client.raw_outputs(job)]
        document["outputs"] = values
        output.result(document, _outputs_text(values, None))
    elif command == "error":
        document["error"] = message = await client.error(job)
        output.result(document, escape(message))
    return CliExit.OK


def _storage_endpoint(args: argparse.Namespace, environ: Mapping[str, str]) -> tuple[Endpoint, str]:
    """Where storage is, and where that came from (for the error when it cannot be reached)."""
    if args.storage:
        return Endpoint.parse(args.storage), "from --storage"
    if environ.get(STORAGE_ENV):
        return Endpoint.parse(environ[STORAGE_ENV]), f"from ${STORAGE_ENV}"
    return DEFAULT_STORAGE, f"the default: neither --storage nor ${STORAGE_ENV} is set"


async def _reach(client: SpiderClient, endpoint: Endpoint, source: str) -> None:
    """Fail in about ``REACH_DEADLINE`` seconds, with one line, if storage is not there."""
    try:
        await client.reach(REACH_DEADLINE)
    except StorageUnavailableError as error:
        cause = error.__cause__
        reason = cause.message if isinstance(cause, RpcError) else str(error)
        raise StorageUnavailableError(
            f"cannot reach storage at {endpoint} ({source}): {reason}"
        ) from error


def _client_config(args: argparse.Namespace, environ: Mapping[str, str]) -> ClientConfig:
    """TLS from the options, else the environment; plaintext without a CA."""
    files = {
        key: getattr(args, f"tls_{key}") or environ.get(variable)
        for key, variable in TLS_ENV.items()
    }
    credential = _group_credential(args, environ)
    if not any(files.values()):
        return ClientConfig(group_credential=credential)
    if not files["ca"]:
        raise ValueError("--tls-cert and --tls-key need --tls-ca (or $SPIDER_TLS_CA)")
    paths = {key: Path(value) if value else None for key, value in files.items()}
    tls = TlsConfig(ca=paths["ca"], cert=paths["cert"], key=paths["key"])
    check_security(SecurityConfig(tls=tls), serves=False)
    return ClientConfig(rpc=RpcConfig(tls=tls), group_credential=credential)


def _group_credential(
    args: argparse.Namespace, environ: Mapping[str, str]
) -> GroupCredential | None:
    """The password file's, else the one ``submit --password`` gives its new group."""
    name = args.group_password_file or environ.get(GROUP_PASSWORD_ENV)
    if name:
        try:
            with Path(name).open("rb") as file:
                password = file.read(MAX_PASSWORD_FILE_BYTES + 1)
        except OSError as exc:
            raise ConfigError(f"--group-password-file: cannot read {name}: {exc.strerror}") from exc
        if len(password) > MAX_PASSWORD_FILE_BYTES:
            raise ConfigError(
                f"--group-password-file: {name} is over {MAX_PASSWORD_FILE_BYTES} bytes: "
                "is it the right file?"
            )
        return GroupCredential(password.removesuffix(b"\n").removesuffix(b"\r"))
    if args.command == "submit" and args.group_id is None:
        return GroupCredential(args.password.encode())
    return None


def _unwrapped_interrupt(
    run: Callable[[Callable[[], Awaitable[int]]], int], main: Callable[[], Awaitable[int]]
) -> int:
    """``run(main)``, with a Ctrl-C that a nursery wrapped in an exception group raised bare."""
    try:
        return run(main)
    except BaseExceptionGroup as group:
        if leaves_if_only(group, KeyboardInterrupt):
            raise KeyboardInterrupt from None
        raise


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """Run ``spider``; return its exit status."""
    args = build_parser().parse_args(argv)
    output = Output(args.json)
    environ = os.environ if environ is None else environ
    try:
        endpoint, source = _storage_endpoint(args, environ)
        config = _client_config(args, environ)
        if args.command in LISTING_COMMANDS:  # the filters, checked before storage is called
            check_listing_filters(args)
    except (ValueError, ConfigError) as error:
        output.failure(error, "usage")
        return CliExit.USAGE

    async def run() -> int:
        # A bad job file is the user's to fix whether or not storage is up: read it first.
        description = load_job(args.source, args.path) if args.command == "submit" else None
        async with open_client(endpoint, config) as client:
            await _reach(client, endpoint, source)
            return await _run_command(client, args, output, description)

    try:
        return _unwrapped_interrupt(trio.run, run)
    except ClientError as error:
        status = status_for(error)
        output.failure(error, status.name.lower())
        return status
    except KeyboardInterrupt:
        if args.command == "dashboard":  # Ctrl-C is how a dashboard is meant to stop
            return CliExit.OK
        output.failure(KeyboardInterrupt("interrupted"), "interrupted")
        return CliExit.INTERRUPTED
