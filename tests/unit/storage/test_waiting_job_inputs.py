"""A job that waits to be started keeps its inputs as the client sent them (compressed), so a
small request whose inputs decompress to many megabytes does not hold them in storage's memory
for as long as nobody starts it; StartJob decodes them for the input tasks."""

from __future__ import annotations

import gc
import tracemalloc

import ormsgpack
import trio
import trio.testing

from spider.core.ids import JobId
from spider.core.task_graph import TaskGraph, encode_job_inputs, encode_task_graph
from spider.core.wire import encode_frame
from spider.storage import StorageState

from .fake_database import FakeDatabase
from .jobs import create_state, drain, new_group, summing_task

INPUT = ormsgpack.packb(bytes(8 << 20))
"""One job input of 8 MiB, which zstd compresses to under a kilobyte."""


def one_task() -> TaskGraph:
    graph = TaskGraph()
    graph.insert_task(summing_task(1, 1))
    return graph


async def input_frame_of_the_first_task(state: StorageState, job_id: JobId) -> bytes:
    em = (await state.register_execution_manager("10.0.0.1")).execution_manager_id
    (entry,) = await drain(state)
    context = await state.lifecycle.register_task_instance(job_id, entry.task_id, em, state.session)
    return context.serialized_task_io


def held_by(state: StorageState, job_id: JobId) -> tuple[int, tuple[bytes, ...] | None]:
    jcb = state.lifecycle.cache.get(job_id)
    assert jcb is not None
    assert jcb.dataflow is not None
    inputs = jcb.dataflow.job_inputs
    return len(inputs.compressed), inputs.payloads


async def test_a_ready_job_holds_its_inputs_compressed_until_started(
    autojump_clock: trio.testing.MockClock,
) -> None:
    database = FakeDatabase()
    state = await create_state(database)
    graph, inputs = encode_task_graph(one_task()), encode_job_inputs([INPUT])
    assert len(inputs) < 4096
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        job_id = await state.lifecycle.register_job(new_group(database), graph, inputs)
        gc.collect()
        retained = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert retained < 1 << 20, f"a Ready job retained {retained} bytes"
    assert held_by(state, job_id) == (len(inputs), None)

    await state.lifecycle.start_job(job_id)
    assert held_by(state, job_id) == (0, (INPUT,))
    assert await input_frame_of_the_first_task(state, job_id) == encode_frame([INPUT])


async def test_a_job_started_as_it_is_submitted_is_decoded_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    database = FakeDatabase()
    state = await create_state(database)
    graph, inputs = encode_task_graph(one_task()), encode_job_inputs([INPUT])
    job_id = await state.lifecycle.register_job(new_group(database), graph, inputs, start=True)
    assert held_by(state, job_id) == (0, (INPUT,))
    assert await input_frame_of_the_first_task(state, job_id) == encode_frame([INPUT])


async def test_a_recovered_ready_job_holds_its_inputs_compressed(
    autojump_clock: trio.testing.MockClock,
) -> None:
    database = FakeDatabase()
    state = await create_state(database)
    graph, inputs = encode_task_graph(one_task()), encode_job_inputs([INPUT])
    job_id = await state.lifecycle.register_job(new_group(database), graph, inputs)
    restarted = await create_state(database)
    assert held_by(restarted, job_id) == (len(inputs), None)
    await restarted.lifecycle.start_job(job_id)
    assert await input_frame_of_the_first_task(restarted, job_id) == encode_frame([INPUT])
