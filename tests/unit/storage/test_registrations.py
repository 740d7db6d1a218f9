"""Resource groups, execution managers, schedulers and the session.

Mirrors upstream's service tests for these (ids returned, verify right and wrong passwords,
heartbeats, the resend on a scheduler replacement) and checks the password hashing.
"""

from __future__ import annotations

import base64
import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spider.core.ids import ExecutionManagerId, ResourceGroupId
from spider.core.task_id import TaskId
from spider.rpc.errors import Status
from spider.storage import (
    BadRequest,
    EmDead,
    IllegalEmId,
    InvalidResourceGroup,
    Lane,
    RegisteredScheduler,
    ResourceGroupExists,
    grpc_status,
)
from spider.storage.passwords import ScryptCost, hash_password, verify_password

from .fake_database import FakeDatabase
from .jobs import create_state, diamond, drain, new_group, submission

CHEAP = ScryptCost(log2_n=4, r=1, p=1)


async def test_add_resource_group_returns_an_id_and_stores_a_salted_hash() -> None:
    database = FakeDatabase()
    state = await create_state(database)
    group_id = await state.add_resource_group("team-a", b"s3cret")
    name, stored = database.groups[group_id]
    assert name == "team-a"
    assert b"s3cret" not in stored
    assert stored.startswith(b"scrypt-sha256$14$8$1$")
    other = await state.add_resource_group("team-b", b"s3cret")
    assert database.groups[other][1] != stored  # a fresh salt per group


async def test_verify_resource_group_accepts_the_right_password_only() -> None:
    state = await create_state(FakeDatabase())
    group_id = await state.add_resource_group("team-a", b"s3cret")
    await state.verify_resource_group(group_id, b"s3cret")
    for group, password in ((group_id, b"wrong"), (ResourceGroupId(404), b"s3cret")):
        with pytest.raises(InvalidResourceGroup) as caught:
            await state.verify_resource_group(group, password)
        assert str(caught.value) == "invalid resource group"
        assert grpc_status(caught.value) is Status.UNAUTHENTICATED


async def test_a_duplicate_or_malformed_resource_group_is_refused() -> None:
    state = await create_state(FakeDatabase())
    await state.add_resource_group("team-a", b"")
    with pytest.raises(ResourceGroupExists, match="'team-a' already exists") as caught:
        await state.add_resource_group("team-a", b"x")
    assert grpc_status(caught.value) is Status.ALREADY_EXISTS
    with pytest.raises(BadRequest, match="1 to 256 characters, got 257"):
        await state.add_resource_group("x" * 257, b"")
    with pytest.raises(BadRequest, match="at most 2048"):
        await state.add_resource_group("big", b"x" * 2049)


def test_password_hashes_verify_and_reject_tampering() -> None:
    stored = hash_password(b"pw", CHEAP)
    assert verify_password(b"pw", stored)
    assert not verify_password(b"pw2", stored)
    assert not verify_password(b"pw", stored[:-4] + b"AAA=")
    assert not verify_password(b"pw", b"plain text")
    assert not verify_password(b"pw", stored.replace(b"scrypt-sha256$4$", b"scrypt-sha256$99$"))
    assert not verify_password(b"pw", stored.replace(b"$1$1$", b"$1$x$", 1))


@given(password=st.binary(max_size=80), suffix=st.binary(min_size=1, max_size=4))
@settings(max_examples=25, deadline=None)
def test_no_other_password_verifies(password: bytes, suffix: bytes) -> None:
    # HMAC (inside scrypt) pads short keys with zeros: fed raw, pw and pw + b"\0" were one.
    stored = hash_password(password, CHEAP)
    assert verify_password(password, stored)
    assert not verify_password(password + suffix, stored)
    assert not verify_password(password + bytes(len(suffix)), stored)


def test_hashes_of_the_raw_password_written_before_still_verify() -> None:
    salt = bytes(range(16))
    raw = hashlib.scrypt(b"pw", salt=salt, n=16, r=1, p=1, dklen=32)
    legacy = b"$".join([b"scrypt", b"4", b"1", b"1", base64.b64encode(salt), base64.b64encode(raw)])
    assert verify_password(b"pw", legacy)
    assert not verify_password(b"pw2", legacy)
    assert hash_password(b"pw", CHEAP).startswith(b"scrypt-sha256$")


async def test_register_execution_manager_returns_an_id_and_the_session() -> None:
    database = FakeDatabase()
    state = await create_state(database)
    registration = await state.register_execution_manager("2001:db8::1")
    assert registration.session_id == state.session
    assert database.ems[registration.execution_manager_id].ip_address == "2001:db8::1"
    again = await state.register_execution_manager("10.0.0.1")
    assert again.execution_manager_id != registration.execution_manager_id
    with pytest.raises(BadRequest, match="not an IPv4 or IPv6 address"):
        await state.register_execution_manager("not-an-ip")


async def test_heartbeats_of_known_unknown_and_dead_execution_managers() -> None:
    database = FakeDatabase()
    state = await create_state(database)
    em_id = (await state.register_execution_manager("10.0.0.1")).execution_manager_id
    assert await state.update_execution_manager_heartbeat(em_id) == state.session
    with pytest.raises(IllegalEmId) as unknown:
        await state.update_execution_manager_heartbeat(ExecutionManagerId(999))
    assert grpc_status(unknown.value) is Status.INVALID_ARGUMENT
    database.ems[em_id].alive = False
    with pytest.raises(EmDead) as dead:
        await state.update_execution_manager_heartbeat(em_id)
    assert grpc_status(dead.value) is Status.FAILED_PRECONDITION


async def test_register_scheduler_resends_ready_tasks_only_when_replacing_a_scheduler() -> None:
    database = FakeDatabase()
    state = await create_state(database)
    job_id = await state.lifecycle.register_job(new_group(database), *submission(diamond(), [1, 2]))
    await state.lifecycle.start_job(job_id)
    assert len(await drain(state)) == 1
    first = await state.register_scheduler("10.0.0.5", 50052)
    assert first.session_id == state.session
    assert await drain(state) == []
    second = await state.register_scheduler("10.0.0.6", 50052)
    assert second.scheduler_id != first.scheduler_id
    entries = await drain(state)
    assert [(e.job_id, e.task_id) for e in entries] == [(job_id, TaskId.index(0))]
    assert await state.get_schedulers() == [
        RegisteredScheduler(second.scheduler_id, "10.0.0.6", 50052)
    ]
    with pytest.raises(BadRequest):
        await state.register_scheduler("", 50052)
    with pytest.raises(BadRequest):
        await state.register_scheduler("host", 70000)


async def test_each_storage_start_is_a_new_session() -> None:
    database = FakeDatabase()
    first = await create_state(database)
    second = await create_state(database)
    assert (first.session, second.session) == (1, 2)
    batch = await second.poll_ready_tasks(Lane.TASK, 1, 0)
    assert batch.session_id == 2
