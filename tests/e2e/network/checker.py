"""Runs a fixed set of jobs through one network fault and checks what must hold after it.

The run: submit the jobs, wait until some tasks have ended, inject the fault, hold it, heal,
and at the heal submit a small probe job. Then it checks that

- every job Succeeds with the outputs a direct call of its task functions gives;
- no task of a finished job starts after the job was seen to end (nor by the end of a last
  job run after all of them, which would flush out work still queued somewhere);
- no acknowledged report is lost: once an EM logged that storage accepted a task's success,
  that task never starts again;
- the cluster serves again within ``RECOVERY_BOUND`` of the heal (the probe job ends).

It counts re-runs: journaled starts beyond one per task (beyond ``failures + 1`` for the tasks
that fail on purpose). An EM that storage declared dead during the fault registers again by
itself; one that exits with status 1 "so that its supervisor starts a fresh one" (its last log
line when storage does not know its id, or declared it dead under ``on_declared_dead: exit``;
docs/execution-manager.md, "Exit statuses") has the checker for its supervisor: after the heal
it starts a new EM in the same namespace, and counts it.
"""

from __future__ import annotations

import datetime
import json
import time
from collections import Counter
from collections.abc import Callable

import attrs

from tests.e2e.cluster.cluster import Cluster
from tests.e2e.cluster.driver import (
    JOB_DEADLINE,
    POLL_INTERVAL,
    Ended,
    JobDriver,
    JournalLine,
    read_journal,
    runs_after_end,
)
from tests.e2e.cluster.examples import EX, Job, flaky_job, nn_job, wordcount_job

from .netns import Network

TEXT = b"a rose is a rose is a rose " * 5 + b"and so on"
ENDED_BEFORE_FAULT = 6
FLAKY_FAILURES = [1, 0, 2]
RECOVERY_BOUND = 30.0
"""Seconds from the heal until the probe job has ended (and each job, waited for in turn)."""
SCENARIO_BOUND = 120.0
"""Seconds a whole scenario may take, from the first submission to the last check."""
SUPERVISED_EXIT = "stops so that its supervisor starts a fresh one"
REPORTED = "Task outcome reported."


@attrs.frozen
class Scenario:
    """A fault, held for ``hold_sec`` and then healed."""

    name: str
    inject: Callable[[Network], None]
    hold_sec: float
    what: str


@attrs.frozen
class Outcome:
    """What one scenario measured; a row of the reliability table."""

    scenario: str
    latency_method: str
    hold_sec: float
    recovery_sec: float | None
    """From the heal to the end of a job submitted at the heal; None if it never ended."""
    total_sec: float
    reruns: int | None
    em_restarts: int
    acked_reports: int
    result: str


OUTCOMES: list[Outcome] = []
"""The scenarios run in this session, for the table the terminal summary prints."""


def jobs() -> list[Job]:
    return [
        wordcount_job(TEXT),
        nn_job(layers=5, width=6, seed=1),
        nn_job(layers=5, width=6, seed=2),
        flaky_job(FLAKY_FAILURES),
    ]


def probe_job(seed: int) -> Job:
    return nn_job(layers=2, width=EX.FAN_IN, seed=seed)


@attrs.define(eq=False)
class Supervisor:
    """Fails on a service that exited, except an EM that stopped because storage declared it
    dead; that one is started again once the network has healed."""

    cluster: Cluster
    healed: bool = False
    restarts: int = 0

    def check(self) -> None:
        for index, em in enumerate(self.cluster.ems):
            if em is None or em.process.poll() is None:
                continue
            if em.process.returncode != 1 or SUPERVISED_EXIT not in em.log():
                raise AssertionError(f"{em.name} exited with {em.process.returncode}:\n{em.log()}")
            if self.healed:
                self.cluster.exited.append(em)
                self.cluster.ems[index] = None
                self.cluster.start_em(index)
                self.restarts += 1
        for service in (self.cluster.storage, self.cluster.scheduler):
            if service is not None and service.process.poll() is not None:
                raise AssertionError(f"{service.name} exited:\n{service.log()}")


def _wait_for_progress(cluster: Cluster, job_ids: list[int], check: Callable[[], None]) -> None:
    deadline = time.monotonic() + JOB_DEADLINE
    while True:
        done = [
            line
            for line in read_journal(cluster.state_dir)
            if line.job_id in job_ids and line.phase == "end"
        ]
        if len(done) >= ENDED_BEFORE_FAULT:
            return
        check()
        assert time.monotonic() < deadline, f"only {len(done)} tasks ended"
        time.sleep(POLL_INTERVAL)  # polling the journal until the jobs are under way


def _hold(seconds: float, check: Callable[[], None]) -> None:
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        check()
        time.sleep(POLL_INTERVAL)  # the fault lasts this long: it is the scenario, not a race


def count_reruns(journal: list[JournalLine], allowed: dict[tuple[int, str], int]) -> int:
    """Starts beyond the allowed number per task (one, or the deliberate failures plus one)."""
    starts = Counter((line.job_id, line.task) for line in journal if line.phase == "start")
    return sum(max(0, count - allowed.get(key, 1)) for key, count in starts.items())


@attrs.frozen
class Acknowledged:
    """An EM's log line saying storage accepted the outcome of a task's instance at ``at``."""

    job_id: int
    task: str
    at: float


def _task_label(task_id: str) -> str:
    """``Index(3)`` (the EM's log) as ``index:3`` (the journal)."""
    if task_id.startswith("Index("):
        return f"index:{task_id[len('Index(') : -1]}"
    return task_id.lower()


def acknowledged_reports(logs: list[str]) -> list[Acknowledged]:
    acks = []
    for log in logs:
        for text in log.splitlines():
            if REPORTED not in text:
                continue
            entry = json.loads(text)
            at = datetime.datetime.fromisoformat(entry["timestamp"]).timestamp()
            acks.append(Acknowledged(entry["job_id"], _task_label(entry["task_id"]), at))
    return acks


def lost_acknowledgements(
    journal: list[JournalLine], acks: list[Acknowledged], failures: dict[tuple[int, str], int]
) -> list[tuple[Acknowledged, JournalLine]]:
    """Starts of a task after storage acknowledged its success: a lost acknowledged report.

    A task failing on purpose has its first ``failures`` acknowledgements taken as those of its
    failed attempts (which are retried, rightly); the rest are its success. A failure report
    that never got acknowledged only makes this check see fewer successes, never a false loss.
    """
    lost = []
    by_task: dict[tuple[int, str], list[Acknowledged]] = {}
    for ack in sorted(acks, key=lambda ack: ack.at):
        by_task.setdefault((ack.job_id, ack.task), []).append(ack)
    for key, task_acks in by_task.items():
        successes = task_acks[failures.get(key, 0) :]
        if not successes:
            continue
        first = successes[0]
        lost += [
            (first, line)
            for line in journal
            if (line.job_id, line.task) == key and line.phase == "start" and line.at > first.at
        ]
    return lost


def _em_logs(cluster: Cluster) -> list[str]:
    services = [*cluster.exited, *cluster.ems]
    return ["".join(s.lines) for s in services if s is not None and s.name.startswith("em-")]


def run_scenario(
    cluster: Cluster, network: Network, driver: JobDriver, scenario: Scenario
) -> Outcome:
    """Run the jobs through ``scenario``; fail if anything that must hold did not. The row of
    the table is recorded in ``OUTCOMES`` either way."""
    run = _Run(cluster, network, driver, scenario)
    try:
        run.through()
    except AssertionError as failure:
        OUTCOMES.append(run.outcome(f"failed: {str(failure).splitlines()[0][:80]}"))
        raise
    outcome = run.outcome("ok")
    OUTCOMES.append(outcome)
    return outcome


@attrs.define(eq=False)
class _Run:
    cluster: Cluster
    network: Network
    driver: JobDriver
    scenario: Scenario
    started: float = attrs.field(factory=time.monotonic)
    recovery: float | None = None
    reruns: int | None = None
    acks: int = 0
    supervisor: Supervisor = attrs.field(
        default=attrs.Factory(lambda run: Supervisor(run.cluster), takes_self=True), init=False
    )

    def outcome(self, result: str) -> Outcome:
        return Outcome(
            scenario=self.scenario.name,
            latency_method=self.network.latency_method.value,
            hold_sec=self.scenario.hold_sec,
            recovery_sec=self.recovery,
            total_sec=time.monotonic() - self.started,
            reruns=self.reruns,
            em_restarts=self.supervisor.restarts,
            acked_reports=self.acks,
            result=result,
        )

    def through(self) -> None:
        driver, cluster, check = self.driver, self.cluster, self.supervisor.check
        submitted = jobs()
        job_ids = [driver.submit(job) for job in submitted]
        _wait_for_progress(cluster, job_ids, check)
        fault_at = time.time()
        self.scenario.inject(self.network)
        _hold(self.scenario.hold_sec, check)
        self.network.heal()
        healed_at = time.time()
        self.supervisor.healed = True
        probe_id, probe_ended = driver.run(probe_job(seed=7), check, within=RECOVERY_BOUND)
        self.recovery = probe_ended.at - healed_at

        ended: dict[int, Ended] = {probe_id: probe_ended}
        for job_id, job in zip(job_ids, submitted, strict=True):
            ended[job_id] = driver.wait(job_id, check, within=RECOVERY_BOUND)
            assert ended[job_id].state == "SUCCEEDED", driver.error(job_id)
            assert driver.outputs(job_id, job) == job.expected
        sentinel, sentinel_ended = driver.run(probe_job(seed=8), check, within=RECOVERY_BOUND)
        ended[sentinel] = sentinel_ended
        check()

        journal = read_journal(cluster.state_dir)
        failures = {
            (job_ids[-1], f"index:{index}"): count for index, count in enumerate(FLAKY_FAILURES)
        }
        self.reruns = count_reruns(journal, {key: count + 1 for key, count in failures.items()})
        assert any(line.job_id in job_ids and line.at > fault_at for line in journal), (
            "the jobs had ended before the fault"
        )
        assert runs_after_end(journal, ended) == []
        commit = cluster.state_dir / f"commit-{job_ids[-1]}"
        assert commit.read_text().split() == [str(value) for value in submitted[-1].expected]
        acks = acknowledged_reports(_em_logs(cluster))
        self.acks = len(acks)
        assert acks, "no EM logged an acknowledged report: is its log level DEBUG?"
        assert lost_acknowledgements(journal, acks, failures) == []
        total = time.monotonic() - self.started
        assert total <= SCENARIO_BOUND, f"the scenario took {total:.1f} s"


def _or_dash(value: float | None, form: str) -> str:
    return "-" if value is None else format(value, form)


def table(outcomes: list[Outcome]) -> str:
    """The reliability table, in Markdown."""
    lines = [
        "| scenario | fault held (s) | recovery after heal (s) | scenario total (s) "
        "| re-runs | EM restarts | acknowledged reports | latency by | result |",
        "|---|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    lines += [
        f"| {o.scenario} | {o.hold_sec:g} | {_or_dash(o.recovery_sec, '.1f')} "
        f"| {o.total_sec:.1f} | {_or_dash(o.reruns, 'd')} | {o.em_restarts} "
        f"| {o.acked_reports} | {o.latency_method} | {o.result} |"
        for o in outcomes
    ]
    return "\n".join(lines)
