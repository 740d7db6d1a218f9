"""``list_jobs``: filters by state, group and time, newest first, paged by id; on SQLite and on
MariaDB, against the same filtering done in Python over the jobs the test made."""

from __future__ import annotations

import itertools

import attrs

from spider.core.ids import JobId, ResourceGroupId
from spider.core.job_state import JobState
from spider.storage.db import JobQuery, StorageDatabase

from .storage_helpers import GRAPH, INPUTS, NOW


@attrs.frozen
class Made:
    id: JobId
    group: ResourceGroupId
    state: JobState
    created_at: float


def _make_jobs(database: StorageDatabase, group: ResourceGroupId) -> list[Made]:
    other = database.add_resource_group("listing-other", b"x")
    made = []
    plans = list(itertools.product((group, other), (None, JobState.RUNNING, JobState.CANCELLED)))
    for step, (owner, target) in enumerate(plans * 2):
        created = NOW + 10 * step
        job = database.insert_job(owner, GRAPH, INPUTS, created, started=target is not None)
        if target is JobState.CANCELLED:
            database.transition_job(job, JobState.CANCELLED, created + 1)
        made.append(Made(job, owner, target or JobState.READY, created))
    return made


def _expected(made: list[Made], query: JobQuery) -> list[JobId]:
    return [
        job.id
        for job in sorted(made, key=lambda job: job.id, reverse=True)
        if (not query.states or job.state in query.states)
        and query.resource_group_id in (None, job.group)
        and (query.created_after is None or job.created_at >= query.created_after)
        and (query.created_before is None or job.created_at < query.created_before)
        and (query.below_id is None or job.id < query.below_id)
    ][: query.limit]


def test_every_filter_and_their_combinations(
    storage_database: StorageDatabase, group: ResourceGroupId
) -> None:
    made = _make_jobs(storage_database, group)
    middle = made[len(made) // 2]
    for states, owner, after, before, below in itertools.product(
        (
            frozenset(),
            frozenset({JobState.RUNNING}),
            frozenset({JobState.READY, JobState.CANCELLED}),
        ),
        (None, group),
        (None, middle.created_at),
        (None, middle.created_at + 25),
        (None, middle.id),
    ):
        query = JobQuery(states, owner, after, before, below, limit=4)
        listed = storage_database.list_jobs(query)
        assert [job.id for job in listed] == _expected(made, query), query
        for job in listed:
            source = next(m for m in made if m.id == job.id)
            assert (job.state, job.resource_group_id, job.created_at) == (
                source.state,
                source.group,
                source.created_at,
            )
            assert (job.ended_at is None) == (job.state is not JobState.CANCELLED)


def test_pages_by_id_cover_every_job_once(
    storage_database: StorageDatabase, group: ResourceGroupId
) -> None:
    made = _make_jobs(storage_database, group)
    seen: list[JobId] = []
    below = None
    while True:
        page = storage_database.list_jobs(JobQuery(below_id=below, limit=5))
        seen += [job.id for job in page]
        if len(page) < 5:
            break
        below = page[-1].id
    assert seen == sorted((job.id for job in made), reverse=True)


def test_a_job_s_error_is_summarised_by_its_first_line(
    storage_database: StorageDatabase, group: ResourceGroupId
) -> None:
    job = storage_database.insert_job(group, GRAPH, INPUTS, NOW, started=True)
    message = "in-task failure: " + "x" * 400 + "\ntask 0 (p::f) of job 1\nTraceback ..."
    storage_database.transition_job(job, JobState.FAILED, NOW + 1, error_message=message)
    (listed,) = storage_database.list_jobs(JobQuery(states=frozenset({JobState.FAILED})))
    assert listed.error_summary == message.partition("\n")[0][:300]
    assert listed.ended_at == NOW + 1
