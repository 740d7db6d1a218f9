"""``open_storage_state``: schema, session and recovery on entry; GC loops for its lifetime."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from spider.storage import open_storage_state

from .fake_database import FakeDatabase
from .jobs import storage_config


async def test_the_loops_run_while_open_and_stop_on_exit(
    autojump_clock: trio.testing.MockClock,
) -> None:
    database = FakeDatabase()
    async with open_storage_state(
        storage_config(), database, clock=trio.current_time, threaded=False
    ) as state:
        assert state.session == 1
        assert database.calls["create_schema"] == 1
        assert database.calls["iter_recoverable_jobs"] == 1
        await trio.sleep(3.5)
        assert database.calls["mark_dead_execution_managers"] == 3
        assert database.calls["delete_terminated_jobs"] == 3
    await trio.sleep(10)
    assert database.calls["mark_dead_execution_managers"] == 3


async def test_an_error_in_the_body_closes_the_state_and_propagates(
    autojump_clock: trio.testing.MockClock,
) -> None:
    database = FakeDatabase()
    # The loops are supervised and never fail, so the group holds exactly the body's error.
    with pytest.RaisesGroup(pytest.RaisesExc(ValueError, match="service failed")):
        async with open_storage_state(
            storage_config(), database, clock=trio.current_time, threaded=False
        ):
            raise ValueError("service failed")
    await trio.sleep(10)
    assert database.calls["mark_dead_execution_managers"] == 0


async def test_a_second_open_on_the_same_database_is_a_new_session(
    autojump_clock: trio.testing.MockClock,
) -> None:
    database = FakeDatabase()
    for expected in (1, 2):
        async with open_storage_state(
            storage_config(), database, clock=trio.current_time, threaded=False
        ) as state:
            assert state.session == expected
