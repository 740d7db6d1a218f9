"""End to end: the same no-op workload on Spider-py (embedded and multi-process) and on Celery.

Every system runs on this machine, on loopback, started and stopped by this script:

* **Spider-py embedded**: ``python -m spider.em`` without endpoints (storage on SQLite, the
  scheduler and one EM in one process), ``executors: N``.
* **Spider-py multi-process**: ``python -m spider.storage``, ``python -m spider.scheduler`` and
  ``python -m spider.em --executors N``, three processes.
* **Spider-py multi-process, secured** (``multi-auth``, ``multi-tls``; not in the default
  set): the same three processes with the cluster credential and resource-group credentials
  on every call (``multi-auth``), and also mutual TLS (``multi-tls``), with a client that sends
  its certificate and group password (docs/security.md). Their tables end with their cost:
  tasks/s and CPU per task as ratios to plain ``multi`` measured in the same run.
* **Metrics variants** (``embedded-metrics``, ``multi-metrics``; not in the default set):
  each process serves its Prometheus metrics (docs/operations.md#metrics-and-health), scraped
  every second by a thread of this script; their tables end with their cost as ratios to
  ``embedded`` and ``multi``, which run with metrics off. The embedded cluster serves its web
  dashboard whenever it serves metrics, so ``embedded-metrics`` also runs the dashboard's
  sampler (one ``GetClusterStatus`` every 2 s); ``embedded`` runs neither.
* **Dashboard variant** (``embedded-dashboard``; not in the default set): ``embedded-metrics``
  plus a thread of this script acting as one browser tab open on a job's page
  (docs/dashboard.md): every 2 s it reads ``/api/overview`` and ``/api/jobs/ID`` of the job it
  follows, the newest job, picked from ``/api/jobs?limit=1`` again once the one it follows has
  ended. Every read must answer 200; the counts are printed. Measured against ``embedded``.
* **Celery**: a prefork worker (``--concurrency N``) with a private ``redis-server`` (no
  persistence) as broker and result backend. Celery and redis-py are pip-installed into this
  interpreter (pinned) and ``redis-server`` apt-installed (sudo unless root) when missing.

The task is ``noop(x: int) -> int`` (returns ``x``) everywhere. Measured, in one run:

1. **Round trip** of a one-task job, sequentially (``--warmup`` untimed, then ``--runs`` timed),
   with one worker process: submit until the result is in the client's hands, p50 and p99.
   Spider's client submits and starts a job in one call and long-polls WaitForJob (Spider-py's
   jobs extension, its default); for comparison also with Spider's calls only (RegisterJob,
   StartJob, GetJobState polling, GetJobOutputs), polling with the client's default backoff and
   every 1 ms, to separate the client's polling from the cluster's own latency. Celery's ``.get()`` waits on a Redis pub/sub message.
2. **Throughput** of ``--tasks`` tasks with 1 and then 2 worker processes (Spider ``executors``,
   Celery ``--concurrency``): Spider as one job of independent tasks, and as that many one-task
   jobs submitted concurrently (``--in-flight`` submitters) and then awaited in order; Celery as
   that many ``.delay()`` then ``.get()`` of each. Tasks/s from the first submission to the last
   result. Spider's client polls every 5 ms (up to 50 ms) here so polling barely rounds the time.
   Beside tasks/s: the CPU time (``/proc``, Linux) the server processes and their children
   (executors, pool workers, Redis) spent per task, which the machine's load disturbs less.
   Celery tasks are sent with ``send_task`` (what ``.delay()`` does, without importing the
   task module here).

3. **Calls and commits per task**: each phase runs on a cluster started for it alone, and the
   gRPC calls the services answered, the calls the embedded cluster's parts made to each other
   in process, and storage's commits (one fsync each on SQLite) are read from the lines they log
   when they stop.

Goals (docs/plan-hot-path.md): one job of N tasks at least Celery's tasks/s, N one-task jobs at
least half of it, a one-task round trip p50 at most 1.5x Celery's embedded and 3x multi-process,
and at most 1.5 ms of server CPU per task for one job on the multi-process cluster. The tables
give Spider/Celery ratios measured in the same run (the machine may be shared, so absolute
figures are noisy; ratios less so).

Run: ``python benchmarks/e2e.py [--runs N] [--warmup N] [--tasks N] [--in-flight N]
[--systems embedded,multi,celery]`` (``--systems multi,multi-auth,multi-tls`` for the cost of
security, ``--systems embedded,embedded-metrics,multi,multi-metrics`` for that of metrics,
``--systems embedded,embedded-metrics,embedded-dashboard`` for that of the dashboard). Progress goes to stderr, tables to stdout.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import functools
import importlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import urllib.request
from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import attrs
import trio

from spider import rpc
from spider.client import (
    ClientConfig,
    GroupCredential,
    JobBuilder,
    TaskSpec,
    decode_outputs,
    open_client,
)
from spider.core.backoff import Backoff

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # for tests.certificates (the test suite's throwaway CA)

CELERY_REQUIREMENT = "celery[redis]==5.7.0"
START_DEADLINE = 60.0
STOP_DEADLINE = 30.0
RESULT_DEADLINE = 120.0
PACKAGE = "bench_e2e"
SYSTEMS = ("embedded", "multi", "celery")
VARIANT_BASES = {
    "multi-auth": "multi",
    "multi-tls": "multi",
    "multi-metrics": "multi",
    "embedded-metrics": "embedded",
    "embedded-dashboard": "embedded",
}
"""Systems not in the default set, and the one each is measured against (same run)."""
SYSTEM_NAMES = {
    "embedded": "Spider-py embedded",
    "multi": "Spider-py multi-process",
    "multi-auth": "Spider-py multi-process, credentials on",
    "multi-tls": "Spider-py multi-process, mutual TLS and credentials on",
    "multi-metrics": "Spider-py multi-process, metrics on and scraped",
    "embedded-metrics": "Spider-py embedded, metrics on and scraped",
    "embedded-dashboard": "Spider-py embedded, metrics scraped and a dashboard tab open",
    "celery": "Celery (prefork, Redis)",
}
SCRAPE_INTERVAL_SEC = 1.0
"""How often the metrics variants scrape every service: more often than a Prometheus would
(15 s by default), so the cost measured is an upper bound."""
BROWSE_INTERVAL_SEC = 2.0
"""How often the dashboard variant reads the dashboard's API, as an open tab does
(``REFRESH_MS`` in spider/dashboard/static/app.js)."""
ENDED_JOB_STATES = ("Succeeded", "Failed", "Cancelled")
DASHBOARD_READS: collections.Counter[str] = collections.Counter()
"""Reads of the dashboard's API that answered 200, by route, over the whole run."""

SPIDER_PACKAGE = '''
from spider.tdl import task

@task
def noop(x: int) -> int:
    """Return ``x``: the task itself costs nothing."""
    return x
'''

CELERY_TASKS = """
import os
from celery import Celery

app = Celery("bench_e2e_celery", broker=os.environ["BENCH_REDIS_URL"],
             backend=os.environ["BENCH_REDIS_URL"])
app.conf.broker_connection_retry_on_startup = True

@app.task(name="noop")
def noop(x):
    return x
"""

NOOP = TaskSpec.remote(PACKAGE, "noop", [int], [int])
DEFAULT_POLL = ClientConfig()
UPSTREAM_CALLS = ClientConfig(jobs_extension=False)
FAST_POLL = ClientConfig(
    poll=Backoff(initial=0.001, cap=0.001, multiplier=1.0), jobs_extension=False
)
THROUGHPUT_POLL = ClientConfig(poll=Backoff(initial=0.005, cap=0.05, multiplier=2.0))
GROUP_PASSWORD = b"bench-group-password"
"""Every group the benchmark creates has it; secured clusters require it with job calls."""
CLUSTER_TOKEN = "bench-cluster-token-0123456789abcdef"


@attrs.frozen
class Target:
    """A cluster to measure: its storage endpoint and how clients must connect to it."""

    endpoint: str
    tls: rpc.TlsConfig | None = None

    def client(self, base: ClientConfig) -> ClientConfig:
        """``base`` with this cluster's TLS and the group password."""
        return attrs.evolve(
            base,
            rpc=attrs.evolve(base.rpc, tls=self.tls),
            group_credential=GroupCredential(GROUP_PASSWORD),
        )


def percentile(sorted_samples: Sequence[float], pct: int) -> float:
    """The sample at index ``count * pct / 100``, clamped to the last (upstream's rule)."""
    return sorted_samples[min(len(sorted_samples) * pct // 100, len(sorted_samples) - 1)]


def progress(message: str) -> None:
    """One line on stderr, so the tables on stdout stay clean."""
    print(f"[e2e {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- results --------------------------------------------------------------------------------


@attrs.frozen
class Latency:
    """Sequential round trips of a one-task job, in seconds."""

    samples: tuple[float, ...]

    @property
    def p50(self) -> float:
        return percentile(sorted(self.samples), 50)

    @property
    def p99(self) -> float:
        return percentile(sorted(self.samples), 99)


@attrs.frozen
class Throughput:
    """Tasks/s of one throughput phase, and the CPU time its server processes spent per task."""

    tasks_per_second: float
    cpu_per_task: float


@attrs.frozen
class CallCounts:
    """What the services logged when they stopped: the gRPC calls they answered, the calls the
    embedded cluster's parts made to each other in process, and storage's commits."""

    grpc_calls: int = 0
    local_calls: int = 0
    transactions: int = 0

    @classmethod
    def from_logs(cls, services: Sequence[Service]) -> CallCounts:
        grpc_calls = local_calls = transactions = 0
        for service in services:
            for line in service.text().splitlines():
                if not line.startswith("{"):
                    continue
                entry = json.loads(line)
                grpc_calls += sum(entry.get("rpc_calls", {}).values())
                local_calls += sum(entry.get("rpc_local_calls", {}).values())
                transactions += entry.get("transactions", 0)
        return cls(grpc_calls, local_calls, transactions)


@attrs.frozen
class PhaseCounts:
    """Calls and commits per task of one phase, from a cluster started for that phase alone
    (its warm-up job and heartbeats included)."""

    tasks: int
    counts: CallCounts

    def per_task(self, value: int) -> str:
        return f"{value / self.tasks:.2f}"


@attrs.define(eq=False)
class SystemResult:
    """What one system measured: round trips by label, throughput by (workers, label)."""

    latency: dict[str, Latency] = attrs.field(factory=dict)
    throughput: dict[tuple[int, str], Throughput] = attrs.field(factory=dict)
    counts: dict[tuple[int, str], PhaseCounts] = attrs.field(factory=dict)


# --- processes ------------------------------------------------------------------------------


@attrs.define(eq=False)
class Service:
    """A child process in its own session, its stderr and stdout going to one log file."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, predicate: Callable[[str], Any]) -> Any:
        """Poll the log until ``predicate(line)`` is truthy for a line; return that value.

        Startup only: the child has no other way to tell us its port.
        """
        deadline = time.monotonic() + START_DEADLINE
        while time.monotonic() < deadline:
            for line in self.text().splitlines():
                found = predicate(line)
                if found:
                    return found
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        tail = "\n".join(self.text().splitlines()[-20:])
        raise RuntimeError(
            f"{self.name} did not start (exit status {self.process.poll()}):\n{tail}"
        )

    def stop(self) -> None:
        """SIGTERM and wait; SIGKILL its whole process group if it lingers or leaves children."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_DEADLINE)
            except subprocess.TimeoutExpired:
                progress(f"{self.name} did not stop in {STOP_DEADLINE:.0f} s: killing it")
        # The group is the child's own session: its executors or pool workers, nothing else.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()


def spawn(
    stack: contextlib.ExitStack,
    name: str,
    argv: Sequence[str | Path],
    directory: Path,
    env: dict[str, str] | None = None,
) -> Service:
    """Start ``argv`` logging into ``directory``; stopped when ``stack`` closes."""
    log = directory / f"{name.replace(' ', '_')}.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [str(arg) for arg in argv],
            cwd=directory,
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            start_new_session=True,  # Ctrl-C reaches only us; we stop the children in order
        )
    service = Service(name, process, log)
    stack.callback(service.stop)
    return service


@attrs.define(eq=False)
class CpuMeter:
    """CPU seconds (user + system) used by services and their children, from ``/proc`` (Linux).

    The process trees are taken when the meter starts (after the warm-up, so executors and pool
    workers exist); a process gone by the end counts for nothing.
    """

    before: dict[int, float]

    @classmethod
    def start(cls, services: Sequence[Service]) -> CpuMeter:
        pids = [pid for service in services for pid in _process_tree(service.process.pid)]
        return cls({pid: _cpu_seconds(pid) for pid in pids})

    def used(self) -> float:
        return sum(max(_cpu_seconds(pid) - then, 0.0) for pid, then in self.before.items())


def _process_tree(pid: int) -> list[int]:
    tree = [pid]
    with contextlib.suppress(OSError):
        for thread in os.listdir(f"/proc/{pid}/task"):
            children = Path(f"/proc/{pid}/task/{thread}/children").read_text().split()
            for child in children:
                tree.extend(_process_tree(int(child)))
    return tree


def _cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    # Fields 14 and 15 of proc(5), utime and stime, counted after the ")" of the name.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure_throughput(
    services: Sequence[Service], tasks: int, run: Callable[[], float]
) -> Throughput:
    """``run()`` gives tasks/s; also meter the CPU the services spend meanwhile."""
    meter = CpuMeter.start(services)
    tasks_per_second = run()
    return Throughput(tasks_per_second, meter.used() / tasks)


def json_port(marker: str, *, field: str = "port") -> Callable[[str], int | None]:
    """A ``wait_for`` predicate: the ``field`` of the JSON log line whose message has
    ``marker``."""

    def find(line: str) -> int | None:
        if marker not in line or not line.startswith("{"):
            return None
        port: int = json.loads(line)[field]
        return port

    return find


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


# --- Spider ---------------------------------------------------------------------------------


def start_embedded(
    stack: contextlib.ExitStack,
    directory: Path,
    executors: int,
    *,
    metrics: bool = False,
    browse: bool = False,
) -> tuple[Target, list[Service]]:
    """The embedded cluster; its storage endpoint and its process. ``metrics``: serve them (and
    the dashboard) on a free port and scrape them every ``SCRAPE_INTERVAL_SEC``; else off.
    ``browse`` (with ``metrics``): also read the dashboard as one open tab does."""
    config = directory / "em.yaml"
    config.write_text(
        f"task_executor: {{package_dir: {directory / 'packages'}}}\n"
        f"embedded: {{data_dir: {directory / 'data'}, storage_port: 0, scheduler_port: 0}}\n"
        f"executors: {executors}\n"
        f"metrics: {{port: {0 if metrics else 'null'}}}\n"
    )
    em = spawn(
        stack, "embedded", [sys.executable, "-m", "spider.em", "--config", config], directory
    )
    prefix = "Spider-py embedded cluster: storage at "
    banner: str = em.wait_for(lambda line: line if line.startswith(prefix) else None)
    endpoint = banner.split(prefix)[1].split(",")[0]
    if metrics:
        metrics_at = banner.split("metrics at http://")[1].split("/")[0]
        stack.enter_context(scraping([metrics_at]))
    if browse:
        dashboard_at = banner.split("dashboard at http://")[1].split("/")[0]
        stack.enter_context(browsing(dashboard_at))
    return Target(endpoint), [em]


@contextlib.contextmanager
def browsing(endpoint: str) -> Iterator[None]:
    """Read the dashboard at ``host:port`` as one browser tab on a job's page would, in a
    thread, until the block ends: at once and then every ``BROWSE_INTERVAL_SEC``, the overview
    and the page of the job followed (the newest, picked again once the followed one ended).
    Fails the run if a read fails or answers other than 200."""
    stop = threading.Event()
    failures: list[str] = []
    reads: collections.Counter[str] = collections.Counter()

    def read(path: str, route: str) -> Any:
        with urllib.request.urlopen(f"http://{endpoint}{path}", timeout=5) as page:
            if page.status != 200:  # urlopen raises on 4xx and 5xx; 1xx-3xx are wrong too
                raise OSError(f"{path} answered {page.status}")
            document = json.loads(page.read())
        reads[route] += 1
        return document

    def browse() -> None:
        job: dict[str, Any] | None = None
        while True:
            try:
                read("/api/overview", "overview")
                if job is None or job["state"] in ENDED_JOB_STATES:
                    newest = read("/api/jobs?limit=1", "job list")["jobs"]
                    job = newest[0] if newest else job
                if job is not None:
                    job = read(f"/api/jobs/{job['job_id']}", "job page")
            except (OSError, ValueError, KeyError) as error:
                failures.append(f"{endpoint}: {error!r}")
            if stop.wait(BROWSE_INTERVAL_SEC):
                return

    thread = threading.Thread(target=browse, name="dashboard tab", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
    DASHBOARD_READS.update(reads)
    progress(f"dashboard reads answered 200: {dict(reads)}")
    if failures or not reads["overview"]:
        raise RuntimeError(f"reading the dashboard failed: {failures[:3] or 'no read'}")


@contextlib.contextmanager
def scraping(endpoints: Sequence[str]) -> Iterator[None]:
    """Scrape each ``host:port``'s ``/metrics`` every ``SCRAPE_INTERVAL_SEC`` in a thread, as
    Prometheus would, until the block ends; fails the run if a scrape fails."""
    stop = threading.Event()
    failures: list[str] = []

    def scrape() -> None:
        while not stop.wait(SCRAPE_INTERVAL_SEC):
            for endpoint in endpoints:
                try:
                    with urllib.request.urlopen(f"http://{endpoint}/metrics", timeout=5) as page:
                        page.read()
                except OSError as error:
                    failures.append(f"{endpoint}: {error}")

    thread = threading.Thread(target=scrape, name="scraper", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
    if failures:
        raise RuntimeError(f"scraping the metrics failed: {failures[:3]}")


def start_multi(
    stack: contextlib.ExitStack,
    directory: Path,
    executors: int,
    *,
    security: str = "off",
    metrics: bool = False,
) -> tuple[Target, list[Service]]:
    """Storage, scheduler and EM as three processes; the cluster and the processes.
    ``security``: ``off``, ``auth`` (cluster and group credentials) or ``tls`` (and mutual TLS).
    ``metrics``: each process serves them on a free port, scraped every ``SCRAPE_INTERVAL_SEC``.
    """
    config_args: dict[str, list[str | Path]] = {"storage": [], "scheduler": [], "em": []}
    configs: dict[str, Any] = {}
    tls = None
    if metrics:
        configs["metrics"] = {"port": 0}
    if security != "off":
        block: dict[str, Any] = {
            "cluster_token_file": str(directory / "cluster-token"),
            "require_group_credentials": True,
        }
        (directory / "cluster-token").write_text(CLUSTER_TOKEN)
        if security == "tls":
            from tests.certificates import make_pki  # only secured runs need openssl

            node = make_pki(directory / "pki").cluster
            block["tls"] = {
                "ca": str(node.ca),
                "cert": str(node.cert),
                "key": str(node.key),
                "require_client_cert": True,
            }
            tls = node.client_tls()
        configs["security"] = block
    if configs:
        for name in config_args:
            path = directory / f"{name}.yaml"
            path.write_text(json.dumps(configs))  # JSON is YAML
            config_args[name] = ["--config", path]
    storage = spawn(
        stack,
        "storage",
        [
            sys.executable,
            "-m",
            "spider.storage",
            *config_args["storage"],
            "--port",
            "0",
            "--data-dir",
            directory / "data",
        ],
        directory,
    )
    storage_at = f"127.0.0.1:{storage.wait_for(json_port('storage listening on'))}"
    scheduler = spawn(
        stack,
        "scheduler",
        [
            sys.executable,
            "-m",
            "spider.scheduler",
            *config_args["scheduler"],
            "--port",
            "0",
            "--storage",
            storage_at,
        ],
        directory,
    )
    scheduler_at = f"127.0.0.1:{scheduler.wait_for(json_port('scheduler listening on'))}"
    em = spawn(
        stack,
        "em",
        [
            sys.executable,
            "-m",
            "spider.em",
            *config_args["em"],
            "--storage",
            storage_at,
            "--scheduler",
            scheduler_at,
            "--package-dir",
            directory / "packages",
            "--executors",
            str(executors),
        ],
        directory,
    )
    if metrics:
        ports = [
            service.wait_for(json_port("metrics on http", field="metrics_port"))
            for service in (storage, scheduler, em)
        ]
        stack.enter_context(scraping([f"127.0.0.1:{port}" for port in ports]))
    return Target(storage_at, tls), [storage, scheduler, em]


async def spider_round_trips(
    target: Target, config: ClientConfig, warmup: int, runs: int
) -> Latency:
    """``warmup`` then ``runs`` one-task jobs, one after the other."""
    async with open_client(target.endpoint, target.client(config)) as client:
        group = await client.add_resource_group(f"latency-{time.monotonic_ns()}", GROUP_PASSWORD)
        samples = []
        for index in range(warmup + runs):
            job = JobBuilder()
            job.add(NOOP, index)
            started = time.perf_counter()
            outputs = await client.run(job, group)
            elapsed = time.perf_counter() - started
            if outputs != [index]:
                raise RuntimeError(f"a Spider job returned {outputs}, expected [{index}]")
            if index >= warmup:
                samples.append(elapsed)
    return Latency(tuple(samples))


async def spider_one_job(target: Target, tasks: int) -> float:
    """Tasks/s of one job of ``tasks`` independent tasks."""
    job = JobBuilder()
    for index in range(tasks):
        job.add(NOOP, index)
    description = job.build()  # building the graph is client work, not the cluster's
    async with open_client(target.endpoint, target.client(THROUGHPUT_POLL)) as client:
        group = await client.add_resource_group(f"one-job-{time.monotonic_ns()}", GROUP_PASSWORD)
        started = time.perf_counter()
        outputs = await client.run(description, group)
        elapsed = time.perf_counter() - started
    if outputs != list(range(tasks)):
        raise RuntimeError("the Spider job of many tasks returned wrong outputs")
    return tasks / elapsed


async def spider_many_jobs(target: Target, tasks: int, in_flight: int) -> float:
    """Tasks/s of ``tasks`` one-task jobs: submitted by ``in_flight`` callers, awaited in order."""
    async with open_client(target.endpoint, target.client(THROUGHPUT_POLL)) as client:
        group = await client.add_resource_group(f"many-jobs-{time.monotonic_ns()}", GROUP_PASSWORD)
        submitted: list[Any] = [None] * tasks
        indexes = iter(range(tasks))

        async def submitter() -> None:
            for index in indexes:  # shared: each index is taken by one submitter
                job = JobBuilder()
                job.add(NOOP, index)
                submitted[index] = await client.submit(job, group, start=True)

        started = time.perf_counter()
        async with trio.open_nursery() as nursery:
            for _ in range(in_flight):
                nursery.start_soon(submitter)
        for index, handle in enumerate(submitted):
            result = await client.wait_result(handle)
            payloads = result.raw_outputs or ()
            if decode_outputs(handle.id, payloads, handle.output_annotations) != [index]:
                raise RuntimeError(f"Spider job {index} returned a wrong output")
        elapsed = time.perf_counter() - started
    return tasks / elapsed


async def spider_warm(target: Target) -> None:
    """One job end to end: the EM is registered and an executor has loaded the package."""
    async with open_client(target.endpoint, target.client(FAST_POLL)) as client:
        group = await client.add_resource_group(f"warm-{time.monotonic_ns()}", GROUP_PASSWORD)
        job = JobBuilder()
        job.add(NOOP, 7)
        with trio.fail_after(START_DEADLINE):
            if await client.run(job, group) != [7]:
                raise RuntimeError("the warm-up job returned a wrong output")


def run_trio(function: Callable[..., Awaitable[Any]], *args: Any) -> Any:
    return trio.run(functools.partial(function, *args))


def measure_spider(
    system: str,
    start: Callable[[contextlib.ExitStack, Path, int], tuple[Target, list[Service]]],
    args: argparse.Namespace,
) -> SystemResult:
    """Each phase on a cluster of its own, so that the calls and commits its services log when
    they stop are that phase's."""
    result = SystemResult()
    name = SYSTEM_NAMES[system]
    for workers in (1, 2):
        phases = ["round trips"] if workers == 1 else []
        for phase in [*phases, "one job", "many jobs"]:
            with tempfile.TemporaryDirectory(prefix=f"e2e_{system}_") as temporary:
                directory = Path(temporary)
                package = directory / "packages" / PACKAGE
                package.mkdir(parents=True)
                (package / "__init__.py").write_text(textwrap.dedent(SPIDER_PACKAGE))
                with contextlib.ExitStack() as stack:
                    progress(f"{name}: starting with {workers} executor(s) for {phase}")
                    target, services = start(stack, directory, workers)
                    run_trio(spider_warm, target)
                    tasks = 1 + run_phase(result, name, phase, workers, target, services, args)
                    progress(f"{name}: stopping")
                result.counts[workers, phase] = PhaseCounts(tasks, CallCounts.from_logs(services))
    return result


def run_phase(
    result: SystemResult,
    name: str,
    phase: str,
    workers: int,
    target: Target,
    services: Sequence[Service],
    args: argparse.Namespace,
) -> int:
    """Run one phase against a warm cluster, record its figures; the number of tasks it ran."""
    if phase == "round trips":
        configs = (
            ("default poll", DEFAULT_POLL),
            ("Spider's calls, default poll", UPSTREAM_CALLS),
            ("Spider's calls, 1 ms poll", FAST_POLL),
        )
        for label, config in configs:
            progress(f"{name}: {args.runs} round trips ({label})")
            result.latency[label] = run_trio(
                spider_round_trips, target, config, args.warmup, args.runs
            )
        runs: int = args.warmup + args.runs
        return len(configs) * runs
    progress(f"{name}: {phase}, {args.tasks} tasks, {workers} executor(s)")
    if phase == "one job":
        run = functools.partial(run_trio, spider_one_job, target, args.tasks)
    else:
        run = functools.partial(run_trio, spider_many_jobs, target, args.tasks, args.in_flight)
    result.throughput[workers, phase] = measure_throughput(services, args.tasks, run)
    tasks: int = args.tasks
    return tasks


# --- Celery ---------------------------------------------------------------------------------


def ensure_celery() -> tuple[Any, str]:
    """The ``celery`` module and the ``redis-server`` path, installing what is missing."""
    try:
        celery = importlib.import_module("celery")
        importlib.import_module("redis")
    except ImportError:
        progress(f"Celery is not installed here: pip install {CELERY_REQUIREMENT!r} (once)")
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", CELERY_REQUIREMENT], check=True
        )
        importlib.invalidate_caches()
        celery = importlib.import_module("celery")
    server = shutil.which("redis-server")
    if server is None:
        progress(
            "redis-server is not installed: apt-get install -y redis-server (once, with sudo unless root)"
        )
        # As root (a container) there may be no sudo, and none is needed.
        sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
        apt = [*sudo, "apt-get", "install", "-y", "--no-install-recommends", "redis-server"]
        if subprocess.run(apt, check=False).returncode != 0:
            subprocess.run([*sudo, "apt-get", "update"], check=True)
            subprocess.run(apt, check=True)
        server = shutil.which("redis-server") or "/usr/bin/redis-server"
    return celery, server


def start_celery(
    stack: contextlib.ExitStack, directory: Path, redis_url: str, concurrency: int
) -> Service:
    return spawn(
        stack,
        f"celery worker c{concurrency}",
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "bench_e2e_celery",
            "worker",
            "--pool",
            "prefork",
            "--concurrency",
            str(concurrency),
            "--loglevel",
            "WARNING",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ],
        directory,
        env={"BENCH_REDIS_URL": redis_url, "PYTHONPATH": str(directory)},
    )


def celery_round_trips(app: Any, warmup: int, runs: int) -> Latency:
    samples = []
    for index in range(warmup + runs):
        started = time.perf_counter()
        output = app.send_task("noop", args=(index,)).get(timeout=RESULT_DEADLINE)
        elapsed = time.perf_counter() - started
        if output != index:
            raise RuntimeError(f"a Celery task returned {output}, expected {index}")
        if index >= warmup:
            samples.append(elapsed)
    return Latency(tuple(samples))


def celery_throughput(app: Any, tasks: int) -> float:
    started = time.perf_counter()
    results = [app.send_task("noop", args=(index,)) for index in range(tasks)]
    for index, result in enumerate(results):
        if result.get(timeout=RESULT_DEADLINE) != index:
            raise RuntimeError(f"Celery task {index} returned a wrong output")
    return tasks / (time.perf_counter() - started)


def measure_celery(args: argparse.Namespace) -> SystemResult:
    celery, redis_server = ensure_celery()
    result = SystemResult()
    with contextlib.ExitStack() as stack:
        directory = Path(tempfile.mkdtemp(prefix="e2e_celery_"))
        stack.callback(shutil.rmtree, directory, ignore_errors=True)
        (directory / "bench_e2e_celery.py").write_text(textwrap.dedent(CELERY_TASKS))
        port = free_port()
        redis = spawn(
            stack,
            "redis",
            [
                redis_server,
                *("--port", str(port), "--bind", "127.0.0.1", "--save", ""),
                *("--appendonly", "no", "--dir", str(directory), "--protected-mode", "no"),
            ],
            directory,
        )
        redis.wait_for(lambda line: "Ready to accept connections" in line)
        redis_url = f"redis://127.0.0.1:{port}/0"
        app = celery.Celery("bench_e2e_client", broker=redis_url, backend=redis_url)
        app.conf.broker_connection_retry_on_startup = True
        stack.callback(app.close)
        for concurrency in (1, 2):
            with contextlib.ExitStack() as worker:
                progress(
                    f"{SYSTEM_NAMES['celery']}: starting a worker, --concurrency {concurrency}"
                )
                celery_worker = start_celery(worker, directory, redis_url, concurrency)
                if app.send_task("noop", args=(7,)).get(timeout=START_DEADLINE) != 7:
                    raise RuntimeError("the Celery warm-up task returned a wrong output")
                if concurrency == 1:
                    progress(f"{SYSTEM_NAMES['celery']}: {args.runs} round trips")
                    result.latency["get()"] = celery_round_trips(app, args.warmup, args.runs)
                progress(f"{SYSTEM_NAMES['celery']}: {args.tasks} tasks, {concurrency} process(es)")
                result.throughput[concurrency, "delay()"] = measure_throughput(
                    [redis, celery_worker], args.tasks, lambda: celery_throughput(app, args.tasks)
                )
                progress(f"{SYSTEM_NAMES['celery']}: stopping the worker")
    return result


# --- report ---------------------------------------------------------------------------------


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


def report(results: dict[str, SystemResult], args: argparse.Namespace) -> None:
    celery = results.get("celery")
    print(
        f"Round trip of a one-task job, sequential, 1 worker process "
        f"({args.warmup} warm-up + {args.runs} timed)"
    )
    print()
    print("| system | client wait | p50 (ms) | p99 (ms) | p50 / Celery p50 |")
    print("|---|---|---|---|---|")
    celery_p50 = celery.latency["get()"].p50 if celery else None
    for system, result in results.items():
        for label, latency in result.latency.items():
            ratio = f"{latency.p50 / celery_p50:.2f}" if celery_p50 else "-"
            print(
                f"| {SYSTEM_NAMES[system]} | {label} | {_ms(latency.p50)} | "
                f"{_ms(latency.p99)} | {ratio} |"
            )
    print()
    print(
        f"Throughput of {args.tasks} no-op tasks (tasks/s; CPU = ms of CPU per task spent by "
        "the server processes and their children, client excluded)"
    )
    print()
    print(
        "| system | submitted as | 1 process | 2 processes | 2 / 1 | 1 proc / Celery | "
        "2 procs / Celery | CPU/task, 1 proc | CPU/task, 2 procs |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for system, result in results.items():
        for label in dict.fromkeys(label for _, label in result.throughput):
            one = result.throughput[1, label]
            two = result.throughput[2, label]
            versus = ["-", "-"]
            if celery:
                versus = [
                    f"{one.tasks_per_second / celery.throughput[1, 'delay()'].tasks_per_second:.2f}",
                    f"{two.tasks_per_second / celery.throughput[2, 'delay()'].tasks_per_second:.2f}",
                ]
            print(
                f"| {SYSTEM_NAMES[system]} | {label} | {one.tasks_per_second:.0f} | "
                f"{two.tasks_per_second:.0f} | {two.tasks_per_second / one.tasks_per_second:.2f} | "
                f"{versus[0]} | {versus[1]} | {_ms(one.cpu_per_task)} | {_ms(two.cpu_per_task)} |"
            )
    print()
    print(
        "Calls and commits per task, each phase on a cluster of its own (warm-up job and "
        "heartbeats included; in-process = the embedded cluster's parts calling each other)"
    )
    print()
    print("| system | phase | processes | gRPC calls/task | in-process calls/task | commits/task |")
    print("|---|---|---|---|---|---|")
    for system, result in results.items():
        for (workers, phase), counts in result.counts.items():
            print(
                f"| {SYSTEM_NAMES[system]} | {phase} | {workers} | "
                f"{counts.per_task(counts.counts.grpc_calls)} | "
                f"{counts.per_task(counts.counts.local_calls)} | "
                f"{counts.per_task(counts.counts.transactions)} |"
            )
    report_variant_cost(results)
    if celery is None or celery_p50 is None:
        return
    print()
    for system, result in results.items():
        if system in ("embedded", "multi"):
            report_goals(system, result, celery, celery_p50)


def report_variant_cost(results: dict[str, SystemResult]) -> None:
    """Each variant (security, metrics) against the system it varies, measured in the same
    run."""
    variants = [system for system in VARIANT_BASES if system in results]
    variants = [system for system in variants if VARIANT_BASES[system] in results]
    if not variants:
        return
    print()
    print("The cost of each variant: its figure ÷ the same figure of the cluster it varies")
    print()
    print(
        "| system | measured against | measure | processes | tasks/s ratio | CPU/task ratio "
        "| round trip p50 ratio |"
    )
    print("|---|---|---|---|---|---|---|")
    for system in variants:
        base = results[VARIANT_BASES[system]]
        result = results[system]
        p50 = result.latency["default poll"].p50 / base.latency["default poll"].p50
        for workers, label in result.throughput:
            mine, theirs = result.throughput[workers, label], base.throughput[workers, label]
            print(
                f"| {SYSTEM_NAMES[system]} | {SYSTEM_NAMES[VARIANT_BASES[system]]} | {label} | "
                f"{workers} | {mine.tasks_per_second / theirs.tasks_per_second:.3f} | "
                f"{mine.cpu_per_task / theirs.cpu_per_task:.3f} | {p50:.3f} |"
            )


def report_goals(
    system: str, result: SystemResult, celery: SystemResult, celery_p50: float
) -> None:
    """One line per goal of the hot-path issue (docs/plan-hot-path.md), met or not."""
    name = SYSTEM_NAMES[system]
    p50_goal = 1.5 if system == "embedded" else 3.0
    p50 = result.latency["default poll"].p50
    print(
        f"- {name}: p50 round trip {_ms(p50)} ms = {p50 / celery_p50:.2f}x Celery's "
        f"{_ms(celery_p50)} ms (goal <= {p50_goal}x): {_verdict(p50 / celery_p50 <= p50_goal)}"
    )
    for workers in (1, 2):
        theirs = celery.throughput[workers, "delay()"].tasks_per_second
        for label, goal in (("one job", 1.0), ("many jobs", 0.5)):
            ratio = result.throughput[workers, label].tasks_per_second / theirs
            print(
                f"- {name}: {label}, {workers} process(es): {ratio:.2f}x Celery's tasks/s "
                f"(goal >= {goal}x): {_verdict(ratio >= goal)}"
            )
    if system == "multi":
        cpu = min(result.throughput[workers, "one job"].cpu_per_task for workers in (1, 2))
        print(
            f"- {name}: server CPU per task, one job: {_ms(cpu)} ms (goal <= 1.5 ms): "
            f"{_verdict(cpu <= 0.0015)}"
        )


def _verdict(met: bool) -> str:
    return "met" if met else "NOT met"


def main(argv: Sequence[str] | None = None) -> None:
    """Measure every system and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=200, help="timed round trips (default 200)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed round trips (default 1)")
    parser.add_argument("--tasks", type=int, default=2000, help="throughput tasks (default 2000)")
    parser.add_argument(
        "--in-flight", type=int, default=16, help="concurrent job submitters (default 16)"
    )
    parser.add_argument(
        "--systems",
        default=",".join(SYSTEMS),
        help=f"comma-separated subset of {','.join(SYSTEMS)} (default all), and of "
        f"{','.join(VARIANT_BASES)} (not in the default)",
    )
    args = parser.parse_args(argv)
    chosen = [name.strip() for name in args.systems.split(",") if name.strip()]
    known = (*SYSTEMS, *VARIANT_BASES)
    unknown = sorted(set(chosen) - set(known))
    if unknown:
        parser.error(f"unknown system(s) {', '.join(unknown)}: choose from {', '.join(known)}")
    results: dict[str, SystemResult] = {}
    started = time.monotonic()
    load_before = os.getloadavg()[0]
    for system in chosen:
        if system == "embedded":
            results[system] = measure_spider(system, start_embedded, args)
        elif system == "multi":
            results[system] = measure_spider(system, start_multi, args)
        elif system == "embedded-metrics":
            metered = functools.partial(start_embedded, metrics=True)
            results[system] = measure_spider(system, metered, args)
        elif system == "embedded-dashboard":
            browsed = functools.partial(start_embedded, metrics=True, browse=True)
            results[system] = measure_spider(system, browsed, args)
        elif system == "multi-metrics":
            results[system] = measure_spider(
                system, functools.partial(start_multi, metrics=True), args
            )
        elif system in VARIANT_BASES:
            secured = functools.partial(start_multi, security=system.removeprefix("multi-"))
            results[system] = measure_spider(system, secured, args)
        else:
            results[system] = measure_celery(args)
    progress(f"done in {time.monotonic() - started:.0f} s")
    print(
        f"Machine: {os.cpu_count()} CPUs, 1-minute load average {load_before:.1f} at the start "
        f"and {os.getloadavg()[0]:.1f} at the end (other work on the machine shows here)"
    )
    print()
    report(results, args)
    if DASHBOARD_READS:
        print()
        print(
            "Reads of the dashboard's API that answered 200 (embedded-dashboard, all phases): "
            + ", ".join(f"{route} {count}" for route, count in DASHBOARD_READS.items())
        )


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        progress("interrupted: every process started here was stopped, temporary files removed")
        sys.exit(130)
