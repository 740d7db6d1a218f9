"""The Trio-asyncio bridge: the one place where an asyncio event loop exists.

grpclib is asyncio-only. ``open_rpc_bridge`` runs a plain asyncio event loop in a thread of its
own for the duration of a block; Trio code reaches it through ``AsyncioBridge.run`` (Trio waits
for an asyncio task) and asyncio code reaches Trio through ``AsyncioBridge.to_trio`` (a callback
in the Trio thread). Cancelling the Trio caller cancels the asyncio task and waits for it to
finish. docs/rpc.md, "Design: why an asyncio thread, not trio-asyncio", compares this design
with trio-asyncio, with numbers.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import threading
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any, TypeVar, TypeVarTuple

import attrs
import outcome
import trio

LOGGER = logging.getLogger("spider.rpc")

BRIDGE_CLOSE_TIMEOUT = 10.0
"""Seconds ``open_rpc_bridge`` waits, on exit, for the asyncio thread to cancel what is left."""

_T = TypeVar("_T")
_Ts = TypeVarTuple("_Ts")

_current_bridge: contextvars.ContextVar[AsyncioBridge | None] = contextvars.ContextVar(
    "spider_rpc_bridge", default=None
)


@attrs.define(eq=False)
class AsyncioBridge:
    """An asyncio event loop running in its own thread, and the two ways across."""

    _loop: asyncio.AbstractEventLoop
    _trio_token: trio.lowlevel.TrioToken
    _background: set[asyncio.Task[None]] = attrs.field(factory=set)
    """Tasks started with ``start_background`` and not finished: closing the bridge lets them
    finish before it cancels what is left (asyncio itself keeps only weak references)."""

    def serves(self, token: trio.lowlevel.TrioToken) -> bool:
        """Whether this bridge belongs to the Trio run of ``token``."""
        return self._trio_token is token

    async def run(
        self,
        fn: Callable[[*_Ts], Coroutine[Any, Any, _T]],
        *args: *_Ts,
        abandon_on_cancel: bool = False,
    ) -> _T:
        """Run ``await fn(*args)`` as a task on the asyncio loop and return its result.

        Trio-flavoured; call it from the Trio thread. Cancelling the caller cancels the asyncio
        task (raising ``CancelledError`` in it). By default it then waits for the task to
        finish before ``trio.Cancelled`` propagates, so nothing outlives the call, however long
        the asyncio side takes. With ``abandon_on_cancel``, ``trio.Cancelled`` propagates at
        once and the task's outcome, whenever it comes, is dropped: a Trio bound around the
        call holds even when the asyncio thread is busy or wedged.
        """
        trio_task = trio.lowlevel.current_task()
        started: list[asyncio.Task[_T]] = []
        waiting = True

        def reschedule(result: outcome.Outcome[_T]) -> None:  # Trio thread
            if waiting:
                trio.lowlevel.reschedule(trio_task, result)

        def deliver(result: outcome.Outcome[_T]) -> None:  # asyncio thread
            # Only an abandoned call can finish after the Trio run: nobody waits for it.
            with contextlib.suppress(trio.RunFinishedError):
                self._trio_token.run_sync_soon(reschedule, result)

        def submit() -> None:
            try:
                aio_task = self._loop.create_task(fn(*args))
            except BaseException as exc:
                deliver(outcome.Error(exc))
                return
            started.append(aio_task)
            aio_task.add_done_callback(lambda done: deliver(outcome.capture(done.result)))

        def cancel() -> None:
            # Runs after submit(): the loop runs call_soon_threadsafe callbacks in order.
            if started:
                started[0].cancel()

        raise_cancel: Callable[[], trio.lowlevel.RaiseCancelT] | None = None

        def abort(
            raise_cancel_arg: Callable[[], trio.lowlevel.RaiseCancelT],
        ) -> trio.lowlevel.Abort:
            nonlocal raise_cancel, waiting
            raise_cancel = raise_cancel_arg
            self.call_soon(cancel)
            if abandon_on_cancel:
                waiting = False
                return trio.lowlevel.Abort.SUCCEEDED
            # Keep waiting: the task reports back once it has handled the cancellation.
            return trio.lowlevel.Abort.FAILED

        self._loop.call_soon_threadsafe(submit)
        try:
            result: _T = await trio.lowlevel.wait_task_rescheduled(abort)
        except asyncio.CancelledError:
            if raise_cancel is None:
                raise
            raise_cancel()
        return result

    def call_soon(self, fn: Callable[[*_Ts], object], *args: *_Ts) -> None:
        """Schedule ``fn(*args)`` in the asyncio thread; a no-op once the loop is closed."""
        if not self._loop.is_closed():
            self._loop.call_soon_threadsafe(fn, *args)

    def start_background(
        self,
        fn: Callable[[*_Ts], Coroutine[Any, Any, None]],
        *args: *_Ts,
        done: Callable[[asyncio.Task[None]], object],
    ) -> None:
        """Start ``fn(*args)`` as an asyncio task that no Trio caller waits for, from any
        thread; ``done(task)`` runs in the asyncio thread when it ends.

        For work that must finish even after its Trio owner stopped waiting for it (stopping a
        server, whose listening socket only that work closes). Closing the bridge lets such
        tasks finish, within ``BRIDGE_CLOSE_TIMEOUT``, before it cancels the rest.
        """

        def start() -> None:  # asyncio thread
            task = self._loop.create_task(fn(*args))
            self._background.add(task)
            task.add_done_callback(self._background.discard)
            task.add_done_callback(done)

        self.call_soon(start)

    def to_trio(self, fn: Callable[[*_Ts], object], *args: *_Ts) -> None:
        """Schedule the synchronous ``fn(*args)`` in the Trio thread; callable from any thread.

        ``fn`` must not raise: an exception from it crashes the Trio run.
        """
        self._trio_token.run_sync_soon(fn, *args)


@asynccontextmanager
async def open_rpc_bridge() -> AsyncIterator[None]:
    """Run the asyncio loop that ``spider.rpc`` clients and servers use, for the block.

    Open it once, near ``trio.run``, around everything that makes or serves calls::

        async def main() -> None:
            async with open_rpc_bridge():
                await run_execution_manager(config)

    Leaving the block stops the loop, cancels whatever asyncio work is left (calls still
    running raise ``CallCancelledError``), and joins the thread, waiting at most
    ``BRIDGE_CLOSE_TIMEOUT`` seconds.
    """
    # A SelectorEventLoop built directly, not asyncio.new_event_loop(): whatever event loop
    # policy the process has installed must not choose the loop grpclib runs on.
    loop = asyncio.SelectorEventLoop()
    bridge = AsyncioBridge(loop, trio.lowlevel.current_trio_token())
    thread = threading.Thread(
        target=_run_until_stopped,
        args=(loop, bridge._background),
        name="spider.rpc asyncio loop",
        daemon=True,
    )
    thread.start()
    reset_token = _current_bridge.set(bridge)
    try:
        yield
    finally:
        _current_bridge.reset(reset_token)
        loop.call_soon_threadsafe(loop.stop)
        with trio.move_on_after(BRIDGE_CLOSE_TIMEOUT, shield=True):
            await trio.to_thread.run_sync(thread.join, abandon_on_cancel=True)
        if thread.is_alive():
            LOGGER.warning(
                "the asyncio thread did not stop within %g s; abandoning it",
                BRIDGE_CLOSE_TIMEOUT,
                extra={"bridge_close_timeout_s": BRIDGE_CLOSE_TIMEOUT},
            )


def _run_until_stopped(
    loop: asyncio.AbstractEventLoop, background: set[asyncio.Task[None]]
) -> None:
    asyncio.set_event_loop(loop)
    try:
        loop.run_forever()
        # Background work (a server being stopped) was started before the stop, since the
        # loop runs callbacks in order; it may not have run a step yet. Let it finish first.
        if background:
            loop.run_until_complete(asyncio.wait(set(background), timeout=BRIDGE_CLOSE_TIMEOUT))
        # What asyncio.run does on the way out: cancel what is left and let it finish, so
        # that every Trio caller still waiting is woken up.
        leftovers = asyncio.all_tasks(loop)
        for task in leftovers:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*leftovers, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
    finally:
        asyncio.set_event_loop(None)
        loop.close()


def has_rpc_bridge() -> bool:
    """Whether this Trio run has an open bridge (``open_rpc_bridge``) in scope.

    A bridge opened by another ``trio.run`` does not count: a thread started from Trio code
    inherits that run's context variables, and its bridge would hand results to the other run.
    """
    bridge = _current_bridge.get()
    return bridge is not None and bridge.serves(trio.lowlevel.current_trio_token())


def current_bridge() -> AsyncioBridge:
    """The innermost open bridge, or a ``RuntimeError`` that says how to open one."""
    bridge = _current_bridge.get()
    if bridge is None or not bridge.serves(trio.lowlevel.current_trio_token()):
        raise RuntimeError(
            "spider.rpc needs the RPC bridge: run the code that makes or serves gRPC calls "
            "inside `async with spider.rpc.open_rpc_bridge():`"
        )
    return bridge
