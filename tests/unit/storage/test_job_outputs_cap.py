"""``runtime.limits.max_job_outputs_bytes``: the outputs of all of a job's tasks together, which
storage holds while the job runs. A report that would pass it is refused as malformed, naming
the setting; nothing changes, and the instance may still report a failure."""

from __future__ import annotations

import attrs
import pytest
import trio
import trio.testing

from spider.core.ids import JobId
from spider.core.job_state import JobState
from spider.core.task_graph import TaskGraph
from spider.core.wire import encode_frame
from spider.storage import BadRequest, StorageState
from spider.storage.config import LimitsConfig

from .fake_database import FakeDatabase
from .jobs import create_state, drain, new_group, storage_config, submission, summing_task

PAYLOAD = b"\xc4\x12" + bytes(18)
"""A 20-byte output payload (msgpack bin)."""
CAP = 50


def three_tasks() -> TaskGraph:
    graph = TaskGraph()
    for _ in range(3):
        graph.insert_task(summing_task(1, 1))
    return graph


async def capped_state(database: FakeDatabase) -> StorageState:
    config = storage_config()
    limits = LimitsConfig(max_job_outputs_bytes=CAP)
    return await create_state(
        database, attrs.evolve(config, runtime=attrs.evolve(config.runtime, limits=limits))
    )


async def test_a_report_past_the_job_s_outputs_cap_is_refused(
    autojump_clock: trio.testing.MockClock,
) -> None:
    database = FakeDatabase()
    state = await capped_state(database)
    job_id = await state.lifecycle.register_job(
        new_group(database), *submission(three_tasks(), [1, 2, 3]), start=True
    )
    em = (await state.register_execution_manager("10.0.0.1")).execution_manager_id
    entries = await drain(state)
    contexts = [
        await state.lifecycle.register_task_instance(job_id, entry.task_id, em, state.session)
        for entry in entries
    ]
    for entry, context in zip(entries[:2], contexts, strict=False):
        await state.lifecycle.report_task_success(
            job_id, entry.task_id, context.task_instance_id, state.session, encode_frame([PAYLOAD])
        )
    last, last_context = entries[2], contexts[2]
    with pytest.raises(BadRequest, match=r"runtime\.limits\.max_job_outputs_bytes") as refused:
        await state.lifecycle.report_task_success(
            job_id,
            last.task_id,
            last_context.task_instance_id,
            state.session,
            encode_frame([PAYLOAD]),
        )
    assert f"to 60 bytes, over the limit of {CAP} bytes" in str(refused.value)
    assert await state.lifecycle.get_job_state(job_id) is JobState.RUNNING

    await state.lifecycle.report_task_failure(
        job_id, last.task_id, last_context.task_instance_id, state.session, "outputs refused"
    )
    assert await state.lifecycle.get_job_state(JobId(job_id)) is JobState.FAILED


async def test_outputs_within_the_cap_finish_the_job(
    autojump_clock: trio.testing.MockClock,
) -> None:
    database = FakeDatabase()
    state = await capped_state(database)
    graph = TaskGraph()
    for _ in range(2):
        graph.insert_task(summing_task(1, 1))
    job_id = await state.lifecycle.register_job(
        new_group(database), *submission(graph, [1, 2]), start=True
    )
    em = (await state.register_execution_manager("10.0.0.1")).execution_manager_id
    for entry in await drain(state):
        context = await state.lifecycle.register_task_instance(
            job_id, entry.task_id, em, state.session
        )
        await state.lifecycle.report_task_success(
            job_id, entry.task_id, context.task_instance_id, state.session, encode_frame([PAYLOAD])
        )
    assert await state.lifecycle.get_job_state(job_id) is JobState.SUCCEEDED
