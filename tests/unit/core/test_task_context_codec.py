"""``TaskContext``: rmp-serde's msgpack of ``[job, task id, instance, group, outputs | nil]``."""

from __future__ import annotations

import contextlib

import ormsgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spider.core.errors import CodecError, TaskContextError
from spider.core.ids import U64_MAX, JobId, ResourceGroupId, TaskInstanceId
from spider.core.task_context import TaskContext
from spider.core.task_id import TaskId
from spider.core.task_outputs import encode_task_outputs

u64 = st.integers(0, U64_MAX)
regular_task_ids = st.one_of(u64.map(TaskId.index), st.just(TaskId.CLEANUP))


@st.composite
def task_contexts(draw: st.DrawFn) -> TaskContext:
    is_commit = draw(st.booleans())
    return TaskContext(
        job_id=JobId(draw(u64)),
        task_id=TaskId.COMMIT if is_commit else draw(regular_task_ids),
        task_instance_id=TaskInstanceId(draw(u64)),
        resource_group_id=ResourceGroupId(draw(u64)),
        serialized_task_graph_outputs=draw(st.binary(max_size=32)) if is_commit else None,
    )


def context(task_id: TaskId, outputs: bytes | None = None) -> TaskContext:
    return TaskContext(JobId(42), task_id, TaskInstanceId(1), ResourceGroupId(7), outputs)


def test_index_task_matches_spiders_example_bytes() -> None:
    expected = bytes.fromhex("95 2a 81 a5 496e646578 00 01 07 c0")
    assert context(TaskId.index(0)).encode() == expected
    assert TaskContext.decode(expected) == context(TaskId.index(0))


def test_commit_task_matches_spiders_example_bytes() -> None:
    # docs/upstream.md#task-data-formats: Python writes the outputs as bin.
    expected = bytes.fromhex("95 2a a6 436f6d6d6974 01 07 c4 05 0000000000")
    commit = context(TaskId.COMMIT, b"\x00" * 5)
    assert commit.encode() == expected
    assert TaskContext.decode(expected) == commit


def test_rusts_array_of_ints_bytes_decode() -> None:
    # rmp-serde writes Vec<u8> as an array of small ints.
    rust_bytes = bytes.fromhex("95 2a a6 436f6d6d6974 01 07 95 00 00 00 00 00")
    assert TaskContext.decode(rust_bytes) == context(TaskId.COMMIT, b"\x00" * 5)


def test_cleanup_task_is_a_bare_variant_name() -> None:
    assert context(TaskId.CLEANUP).encode() == bytes.fromhex("95 2a a7 436c65616e7570 01 07 c0")


def test_the_map_form_decodes() -> None:
    as_map = ormsgpack.packb(
        {
            "job_id": 42,
            "task_id": {"Index": 3},
            "task_instance_id": 1,
            "resource_group_id": 7,
            "serialized_task_graph_outputs": None,
        }
    )
    assert TaskContext.decode(as_map) == context(TaskId.index(3))


def test_the_map_form_names_missing_fields() -> None:
    as_map = ormsgpack.packb({"job_id": 42, "task_id": "Cleanup"})
    with pytest.raises(TaskContextError, match=r"missing field.*task_instance_id"):
        TaskContext.decode(as_map)


@pytest.mark.parametrize(
    ("raw_task_id", "expected"),
    [({0: 9}, TaskId.index(9)), (1, TaskId.COMMIT), (2, TaskId.CLEANUP)],
)
def test_integer_variant_keys_decode(raw_task_id: object, expected: TaskId) -> None:
    outputs = b"\x00" if expected == TaskId.COMMIT else None
    raw = ormsgpack.packb([42, raw_task_id, 1, 7, outputs], option=ormsgpack.OPT_NON_STR_KEYS)
    assert TaskContext.decode(raw).task_id == expected


def test_commit_outputs_round_trip_through_the_context() -> None:
    outputs = encode_task_outputs([b"\x01", b"\xa3abc"])
    decoded = TaskContext.decode(context(TaskId.COMMIT, outputs).encode())
    assert decoded.task_graph_outputs() == [b"\x01", b"\xa3abc"]


def test_empty_commit_outputs_are_still_present() -> None:
    decoded = TaskContext.decode(context(TaskId.COMMIT, encode_task_outputs([])).encode())
    assert decoded.serialized_task_graph_outputs == b"\x00\x00\x00\x00\x00"
    assert decoded.task_graph_outputs() == []


def test_a_regular_task_has_no_outputs() -> None:
    with pytest.raises(TaskContextError, match="not the commit task"):
        context(TaskId.index(0)).task_graph_outputs()


def test_outputs_on_a_non_commit_task_are_rejected() -> None:
    with pytest.raises(TaskContextError, match="only the commit task"):
        context(TaskId.CLEANUP, b"\x00")
    raw = ormsgpack.packb([42, {"Index": 0}, 1, 7, b"\x00"])
    with pytest.raises(TaskContextError, match="only the commit task"):
        TaskContext.decode(raw)


def test_a_commit_without_outputs_is_rejected() -> None:
    with pytest.raises(TaskContextError, match="needs the job outputs"):
        context(TaskId.COMMIT)
    with pytest.raises(TaskContextError, match="needs the job outputs"):
        TaskContext.decode(ormsgpack.packb([42, "Commit", 1, 7, None]))


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"\xc1", "failed to deserialize"),
        (b"", "failed to deserialize"),
        (ormsgpack.packb([42, "Index", 1, 7, None]), "needs a value"),
        (ormsgpack.packb([42, "Nope", 1, 7, None]), "unknown variant"),
        (ormsgpack.packb([42, {"Index": -1}, 1, 7, None]), "must be a u64"),
        (ormsgpack.packb([42, {"Index": 1, "Commit": 2}, 1, 7, None]), "invalid task id"),
        (ormsgpack.packb([-1, "Cleanup", 1, 7, None]), "job_id must be a u64"),
        (ormsgpack.packb([42, "Cleanup", True, 7, None]), "task_instance_id must be a u64"),
        (ormsgpack.packb([42, "Cleanup", 1, 7.0, None]), "resource_group_id must be a u64"),
        (ormsgpack.packb([42, "Commit", 1, 7, [256]]), "must be bytes or nil"),
        (ormsgpack.packb([42, "Commit", 1, 7, "text"]), "must be bytes or nil"),
        (ormsgpack.packb([42, "Cleanup", 1, 7]), "expected an array of 5 elements"),
        (ormsgpack.packb("Cleanup"), "expected an array of 5 elements"),
        (ormsgpack.packb([42, 3, 1, 7, None]), "unknown variant 3"),
    ],
)
def test_malformed_contexts_are_rejected(raw: bytes, message: str) -> None:
    with pytest.raises(TaskContextError, match=message):
        TaskContext.decode(raw)


@settings(deadline=None)
@given(task_contexts())
def test_round_trip(value: TaskContext) -> None:
    assert TaskContext.decode(value.encode()) == value


@settings(deadline=None)
@given(task_contexts(), st.data())
def test_corrupt_bytes_decode_or_raise_a_task_context_error(
    value: TaskContext, data: st.DataObject
) -> None:
    raw = bytearray(value.encode())
    position = data.draw(st.integers(0, len(raw) - 1))
    raw[position] ^= data.draw(st.integers(1, 255))
    with contextlib.suppress(TaskContextError):
        TaskContext.decode(bytes(raw))


@settings(deadline=None)
@given(task_contexts(), st.data())
def test_truncations_are_rejected(value: TaskContext, data: st.DataObject) -> None:
    raw = value.encode()
    with pytest.raises(TaskContextError):
        TaskContext.decode(raw[: data.draw(st.integers(0, len(raw) - 1))])


@settings(deadline=None)
@given(st.binary(max_size=48))
def test_arbitrary_bytes_decode_or_raise_a_codec_error(raw: bytes) -> None:
    with contextlib.suppress(CodecError):
        TaskContext.decode(raw)


msgpack_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), U64_MAX)
    | st.floats()
    | st.text(max_size=8)
    | st.binary(max_size=8)
    | st.sampled_from(["Index", "Commit", "Cleanup"]),
    lambda inner: (
        st.lists(inner, max_size=5)
        | st.dictionaries(st.text(max_size=8) | st.integers(0, 3), inner, max_size=2)
    ),
    max_leaves=10,
)


@settings(deadline=None)
@given(msgpack_values | st.lists(msgpack_values, min_size=5, max_size=5))
def test_well_formed_msgpack_of_any_shape_decodes_or_raises_a_task_context_error(
    value: object,
) -> None:
    raw = ormsgpack.packb(value, option=ormsgpack.OPT_NON_STR_KEYS)
    try:
        decoded = TaskContext.decode(raw)
    except TaskContextError:
        return
    assert TaskContext.decode(decoded.encode()) == decoded
