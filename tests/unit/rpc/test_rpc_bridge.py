"""The bridge itself: asyncio work from Trio, cancellation across, and a clean exit."""

from __future__ import annotations

import asyncio
import threading

import pytest
import trio

from spider import rpc
from spider.rpc._bridge import current_bridge

TEST_BOUND = 10.0
BRIDGE_THREAD = "spider.rpc asyncio loop"


def _bridge_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == BRIDGE_THREAD]


async def test_run_returns_what_the_asyncio_coroutine_returns() -> None:
    async def in_asyncio(a: int, b: int) -> tuple[int, bool]:
        await asyncio.sleep(0)
        return a + b, threading.current_thread().name == BRIDGE_THREAD

    async with rpc.open_rpc_bridge():
        assert await current_bridge().run(in_asyncio, 2, 3) == (5, True)


async def test_run_raises_what_the_asyncio_coroutine_raises() -> None:
    async def fails() -> None:
        await asyncio.sleep(0)
        raise KeyError("from asyncio")

    async with rpc.open_rpc_bridge():
        with pytest.raises(KeyError, match="from asyncio"):
            await current_bridge().run(fails)


async def test_cancelling_the_trio_caller_cancels_the_asyncio_task_and_waits_for_it() -> None:
    entered = asyncio.Event()
    finished: list[str] = []

    async def waits_forever() -> None:
        entered.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            await asyncio.sleep(0)  # cleanup that takes a loop iteration
            finished.append("cancelled")
            raise

    async def wait_entered() -> None:
        await entered.wait()

    async with rpc.open_rpc_bridge():
        bridge = current_bridge()
        with trio.fail_after(TEST_BOUND):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(bridge.run, waits_forever)
                await bridge.run(wait_entered)
                nursery.cancel_scope.cancel()
            # run() returned only after the asyncio task had finished its cleanup.
            assert finished == ["cancelled"]


@pytest.mark.parametrize("abandon_on_cancel", [False, True])
async def test_an_answer_the_asyncio_side_already_had_is_kept_unless_abandoned(
    abandon_on_cancel: bool,
) -> None:
    entered = threading.Event()

    async def answers_despite_the_cancel() -> str:
        entered.set()
        try:
            await asyncio.sleep(TEST_BOUND)
        except asyncio.CancelledError:
            return "the answer"  # had arrived when the cancellation came
        return "too late"

    async with rpc.open_rpc_bridge():
        with trio.fail_after(TEST_BOUND), trio.CancelScope() as caller:
            async with trio.open_nursery() as nursery:

                async def cancel_once_entered() -> None:
                    await trio.to_thread.run_sync(entered.wait)
                    caller.cancel()

                nursery.start_soon(cancel_once_entered)
                answer = await current_bridge().run(
                    answers_despite_the_cancel, abandon_on_cancel=abandon_on_cancel
                )
                assert answer == "the answer"
    # Abandoned, the caller leaves at once and the answer is dropped; kept, it is returned.
    assert caller.cancelled_caught is abandon_on_cancel


async def test_errors_from_the_block_pass_through_unwrapped() -> None:
    with pytest.raises(ValueError, match="from the body"):
        async with rpc.open_rpc_bridge():
            raise ValueError("from the body")


async def test_the_asyncio_thread_lives_exactly_as_long_as_the_block() -> None:
    assert _bridge_threads() == []
    async with rpc.open_rpc_bridge():
        assert len(_bridge_threads()) == 1
    assert _bridge_threads() == []
    with pytest.raises(RuntimeError, match="open_rpc_bridge"):
        current_bridge()


async def test_a_bridge_of_another_trio_run_does_not_count() -> None:
    """A thread started from Trio code inherits the run's context, bridge included; a new
    ``trio.run`` in that thread must not use it (its results would go to the other run)."""

    async def in_the_other_run() -> tuple[bool, bool]:
        inherited = rpc.has_rpc_bridge()
        async with rpc.open_rpc_bridge():
            return inherited, rpc.has_rpc_bridge()

    async with rpc.open_rpc_bridge():
        assert rpc.has_rpc_bridge()
        seen = await trio.to_thread.run_sync(trio.run, in_the_other_run)
    assert seen == (False, True)
    assert not rpc.has_rpc_bridge()
