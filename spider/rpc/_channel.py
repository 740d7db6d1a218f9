"""``Channel``: call any generated stub method from Trio, with a deadline, over a connection pool."""

from __future__ import annotations

import asyncio
import functools
import math
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import attrs
import grpclib.client
import grpclib.config
import trio

from spider.core.backoff import Backoff
from spider.rpc._bridge import AsyncioBridge, current_bridge
from spider.rpc._config import Endpoint, RpcConfig
from spider.rpc._mapping import error_for_call_failure
from spider.rpc._method import UnaryMethod
from spider.rpc._retry import retry_transient
from spider.rpc._tls import client_context
from spider.rpc.errors import DeadlineExceededError

_RequestT = TypeVar("_RequestT")
_ResponseT = TypeVar("_ResponseT")


DEFAULT_RPC_CONFIG = RpcConfig()


@asynccontextmanager
async def connect_channel(
    endpoint: Endpoint, config: RpcConfig = DEFAULT_RPC_CONFIG
) -> AsyncIterator[Channel]:
    """Open a ``Channel`` to ``endpoint`` for the block; needs an open RPC bridge.

    Connections are made lazily, on the first call that uses them, and remade after they are
    lost, so opening a channel to a server that is not up yet succeeds and the first call fails
    with ``UnavailableError`` (transient) instead. Leaving the block closes every connection.
    """
    bridge = current_bridge()
    # Read the certificates here, so a bad file fails the open rather than every call.
    tls = client_context(config.tls) if config.tls is not None else None
    connections = await bridge.run(_make_connections, endpoint, config, tls)
    try:
        yield Channel(endpoint, config, bridge, connections)
    finally:
        # Closing does not wait on the network, so nothing waits for it here either: a busy
        # or wedged asyncio thread cannot hold up leaving the block. The loop runs callbacks
        # in order, so the connections are closed before the bridge's loop stops.
        bridge.call_soon(_close_connections, connections)


async def _make_connections(
    endpoint: Endpoint, config: RpcConfig, tls: ssl.SSLContext | None
) -> list[grpclib.client.Channel]:
    # grpclib binds a channel to the running asyncio loop when it is built, so build it there.
    server_name = config.tls.server_name if config.tls is not None else None
    settings = grpclib.config.Configuration(ssl_target_name_override=server_name)
    return [
        grpclib.client.Channel(endpoint.host, endpoint.port, ssl=tls, config=settings)
        for _ in range(config.connection_pool_size)
    ]


def _close_connections(connections: list[grpclib.client.Channel]) -> None:
    for connection in connections:
        connection.close()


@attrs.define(eq=False)
class Channel:
    """A Trio-facing gRPC client channel: ``config.connection_pool_size`` HTTP/2 connections to
    one server, used round-robin.

    Build it with ``connect_channel``. Any task inside the bridge may call it concurrently.
    """

    endpoint: Endpoint
    """The server this channel talks to."""
    config: RpcConfig
    """Deadline default, pool size and recommended retry policy."""
    _bridge: AsyncioBridge
    _connections: list[grpclib.client.Channel]
    # grpclib's callable for each (method, connection), made on first use.
    _callables: dict[UnaryMethod[Any, Any], list[grpclib.client.UnaryUnaryMethod[Any, Any]]] = (
        attrs.field(factory=dict, init=False)
    )
    _next_connection: int = attrs.field(default=0, init=False)

    async def call(
        self,
        method: UnaryMethod[_RequestT, _ResponseT],
        request: _RequestT,
        *,
        deadline: float | None = None,
        retry: Backoff | None = None,
        abandon_on_cancel: bool = True,
    ) -> _ResponseT:
        """Call ``method`` (a generated ``UnaryMethod``, e.g. ``SchedulerServiceStub.next_task``)
        with ``request``.

        ``deadline`` is the seconds each attempt may take (default ``config.default_deadline``);
        it is sent to the server as ``grpc-timeout`` and enforced here, and its expiry raises
        ``DeadlineExceededError``. With ``retry``, transient failures are retried with that
        policy (see ``retry_transient``); pass ``retry=channel.config.retry`` for calls that are
        safe to repeat.

        Returns the response message; raises an ``RpcError`` subclass for a non-OK status or a
        transport failure. Cancelling the caller cancels the call: the stream is reset and the
        server's handler is cancelled. By default a cancelled call (deadline, caller cancelled)
        is abandoned at once, so the bound holds however busy the asyncio thread is, and an
        answer that arrives meanwhile is dropped. Pass ``abandon_on_cancel=False`` for calls
        whose answer hands something over (an assignment, a registered instance): the caller
        then waits for the asyncio side to finish, and an answer it had already received is
        returned instead of lost.
        """
        if not isinstance(method, UnaryMethod):
            raise TypeError(
                "Channel.call takes a generated UnaryMethod, such as "
                f"SchedulerServiceStub.next_task; got {method!r}"
            )
        budget = call_budget(deadline, self.config.default_deadline)
        if retry is None:
            return await self._call_once(method, request, budget, abandon_on_cancel)
        return await retry_transient(
            self._call_once,
            method,
            request,
            budget,
            abandon_on_cancel,
            backoff=retry,
            what=method.route,
        )

    async def _call_once(
        self,
        method: UnaryMethod[_RequestT, _ResponseT],
        request: _RequestT,
        budget: float,
        abandon_on_cancel: bool,
    ) -> _ResponseT:
        call = self._next_callable(method)
        name = method.route
        metadata = self.config.metadata or None
        # The Trio scope is the authority on the deadline; grpclib gets the same timeout so the
        # server learns it (grpc-timeout) and cancels its handler when it passes.
        with trio.move_on_after(budget):
            try:
                # Abandoned on cancellation unless the caller must see an answer already
                # received: the stream is then reset in the background and the Trio bound holds
                # however busy the asyncio thread is.
                return await self._bridge.run(
                    functools.partial(call, request, timeout=budget, metadata=metadata),
                    abandon_on_cancel=abandon_on_cancel,
                )
            except (Exception, asyncio.CancelledError) as exc:
                error = error_for_call_failure(exc, method=name)
                if error is None:
                    raise
                raise error from exc
        raise DeadlineExceededError(f"no answer within the {budget:g} s deadline", method=name)

    def _next_callable(
        self, method: UnaryMethod[_RequestT, _ResponseT]
    ) -> grpclib.client.UnaryUnaryMethod[_RequestT, _ResponseT]:
        callables = self._callables.get(method)
        if callables is None:
            callables = self._callables[method] = [
                grpclib.client.UnaryUnaryMethod(
                    connection, method.route, method.request_type, method.reply_type
                )
                for connection in self._connections
            ]
        index = self._next_connection
        self._next_connection = (index + 1) % len(callables)
        return callables[index]


def call_budget(deadline: float | None, default: float) -> float:
    """The seconds a call may take: ``deadline``, else ``default``; positive and finite."""
    budget = default if deadline is None else deadline
    if not (budget > 0 and math.isfinite(budget)):
        raise ValueError(
            f"an RPC deadline must be a positive, finite number of seconds, got {budget!r}"
        )
    return budget
