"""``ShutdownDeadline``: one scope per task for the hard timeout and the shutdown deadline."""

from __future__ import annotations

import math

import trio
import trio.testing

from spider.em.pool._deadline import ShutdownDeadline


async def test_the_earlier_of_cap_and_deadline_ends_a_scope_and_says_which(
    autojump_clock: trio.testing.MockClock,
) -> None:
    shutdown = ShutdownDeadline()
    start = trio.current_time()
    timed_out = shutdown.open_scope(cap=start + 1.0)
    with timed_out:
        await trio.sleep_forever()
    assert trio.current_time() - start == 1.0
    assert not shutdown.ended_by_shutdown(timed_out, start + 1.0)
    shutdown.forget(timed_out)

    start = trio.current_time()
    killed = shutdown.open_scope(cap=start + 10.0)
    async with trio.open_nursery() as nursery:

        async def run() -> None:
            with killed:
                await trio.sleep_forever()

        nursery.start_soon(run)
        await trio.sleep(2.0)
        shutdown.move_to(trio.current_time() + 0.5)  # moves the running scope too
    assert trio.current_time() - start == 2.5
    assert shutdown.ended_by_shutdown(killed, start + 10.0)


async def test_a_forgotten_scope_no_longer_moves_and_new_scopes_start_with_the_deadline(
    autojump_clock: trio.testing.MockClock,
) -> None:
    shutdown = ShutdownDeadline()
    assert shutdown.deadline == math.inf
    assert not shutdown.passed()
    done = shutdown.open_scope()
    shutdown.forget(done)
    shutdown.move_to(trio.current_time() + 5.0)
    assert done.deadline == math.inf
    assert shutdown.open_scope(cap=trio.current_time() + 9.0).deadline == shutdown.deadline
    await trio.sleep(5.0)
    assert shutdown.passed()
