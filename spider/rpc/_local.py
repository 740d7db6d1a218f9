"""``LocalChannel``: ``Channel.call`` answered by service objects in this process, without gRPC.

The embedded cluster runs storage, the scheduler and an execution manager in one Trio process.
Over loopback gRPC every call there paid for protobuf encoding, HTTP/2 and two thread hops,
about half of the process's CPU (docs/benchmarks.md, "Earlier: after in-process calls inside the
embedded cluster"). A ``LocalChannel`` calls the same Trio
handlers ``serve`` would run, with the same contract as ``Channel.call``: the deadline bounds the
call (``DeadlineExceededError``), a handler's ``RpcError`` reaches the caller as it is, any other
exception becomes ``InternalError`` (as ``serve`` answers INTERNAL), and cancelling the caller
cancels the handler. Messages are passed as objects, not copies: neither side of Spider-py's
clients and services mutates a message it has handed over.
"""

from __future__ import annotations

import collections
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol, TypeVar, cast

import trio

from spider.core.backoff import Backoff
from spider.rpc._channel import call_budget
from spider.rpc._method import ServiceBase, UnaryMethod
from spider.rpc._server import _trio_methods, invoke_handler
from spider.rpc.errors import DeadlineExceededError, UnimplementedError

_RequestT = TypeVar("_RequestT")
_ResponseT = TypeVar("_ResponseT")


class RpcChannel(Protocol):
    """What clients need of a channel: ``Channel`` (gRPC) or ``LocalChannel`` (in-process)."""

    async def call(
        self,
        method: UnaryMethod[_RequestT, _ResponseT],
        request: _RequestT,
        *,
        deadline: float | None = None,
        retry: Backoff | None = None,
        abandon_on_cancel: bool = True,
    ) -> _ResponseT: ...


class LocalChannel:
    """Calls ``services``' handlers directly; see the module docstring."""

    def __init__(self, services: Sequence[ServiceBase], default_deadline: float) -> None:
        self._default_deadline = default_deadline
        self.calls: collections.Counter[str] = collections.Counter()
        """Calls made through this channel, by route (as ``serve`` counts the calls it gets)."""
        self._handlers: dict[str, tuple[Callable[[Any], Awaitable[Any]], type[Any]]] = {}
        for service in services:
            for method in _trio_methods(service):
                self._handlers[method.route] = (method.handle, method.reply_type)

    async def call(
        self,
        method: UnaryMethod[_RequestT, _ResponseT],
        request: _RequestT,
        *,
        deadline: float | None = None,
        retry: Backoff | None = None,
        abandon_on_cancel: bool = True,
    ) -> _ResponseT:
        """As ``Channel.call``; ``retry`` and ``abandon_on_cancel`` are accepted and unused
        (nothing here is transient, and no other thread holds an answer)."""
        del retry, abandon_on_cancel
        name = method.route
        self.calls[name] += 1
        served = self._handlers.get(name)
        if served is None:
            raise UnimplementedError(f"{name} is not served in this process", method=name)
        handler, reply_type = served
        budget = call_budget(deadline, self._default_deadline)
        with trio.move_on_after(budget):
            reply = await invoke_handler(name, handler, request, reply_type)
            # invoke_handler checked that it is a ``reply_type``, the method's response type.
            return cast(_ResponseT, reply)
        raise DeadlineExceededError(f"no answer within the {budget:g} s deadline", method=name)
