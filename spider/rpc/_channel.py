"""``Channel``: call any generated stub method from Trio, with a deadline, over a connection pool."""

from __future__ import annotations

import math
import ssl
from base64 import b64encode
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, TypeVar, cast

import attrs
import trio
from google.protobuf.message import DecodeError

from spider.core.backoff import Backoff
from spider.rpc._client_connection import Answer, ClientConnection, message_of
from spider.rpc._config import Endpoint, RpcConfig
from spider.rpc._mapping import error_for_status, status_for_http
from spider.rpc._method import UnaryMethod
from spider.rpc._retry import retry_transient
from spider.rpc._tls import client_context
from spider.rpc.errors import (
    DeadlineExceededError,
    InternalError,
    Status,
    UnavailableError,
    UnknownError,
)

_RequestT = TypeVar("_RequestT")
_ResponseT = TypeVar("_ResponseT")


DEFAULT_RPC_CONFIG = RpcConfig()


@asynccontextmanager
async def connect_channel(
    endpoint: Endpoint, config: RpcConfig = DEFAULT_RPC_CONFIG
) -> AsyncIterator[Channel]:
    """Open a ``Channel`` to ``endpoint`` for the block.

    Connections are made lazily, on the first call that uses them, and remade after they are
    lost, so opening a channel to a server that is not up yet succeeds and the first call fails
    with ``UnavailableError`` (transient) instead. Leaving the block closes every connection
    without waiting on the network; an error from the block passes through as itself.
    """
    # Read the certificates here, so a bad file fails the open rather than every call.
    tls = client_context(config.tls) if config.tls is not None else None
    escaped: BaseException | None = None
    async with trio.open_nursery() as connections:
        channel = Channel(endpoint, config, tls, connections)
        try:
            yield channel
        except BaseException as exc:
            # Re-raised below, outside the nursery, so that it is not wrapped in a group.
            escaped = exc
        finally:
            connections.cancel_scope.cancel()
    if escaped is not None:
        raise escaped


def _encoded_metadata(config: RpcConfig) -> list[tuple[bytes, bytes]]:
    encoded = []
    for key, value in config.metadata:
        if isinstance(value, bytes):  # a ``-bin`` key: base64 without padding, as gRPC sends
            encoded.append((key.encode("ascii"), b64encode(value).rstrip(b"=")))
        else:
            encoded.append((key.encode("ascii"), value.encode("ascii")))
    return encoded


@attrs.define(eq=False)
class Channel:
    """A Trio gRPC client channel: ``config.connection_pool_size`` HTTP/2 connections to one
    server, used round-robin.

    Build it with ``connect_channel``. Any task inside its block may call it concurrently.
    """

    endpoint: Endpoint
    """The server this channel talks to."""
    config: RpcConfig
    """Deadline default, pool size and recommended retry policy."""
    _tls: ssl.SSLContext | None
    _nursery: trio.Nursery
    """Where the connections' tasks run: ``connect_channel``'s."""
    _connections: list[ClientConnection | None] = attrs.field(init=False)
    _connecting: list[trio.Lock] = attrs.field(init=False)
    _metadata: list[tuple[bytes, bytes]] = attrs.field(init=False)
    _next_connection: int = attrs.field(default=0, init=False)

    def __attrs_post_init__(self) -> None:
        size = self.config.connection_pool_size
        self._connections = [None] * size
        self._connecting = [trio.Lock() for _ in range(size)]
        self._metadata = _encoded_metadata(self.config)

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
        transport failure. Cancelling the caller cancels the call at once: the stream is reset
        and the server's handler is cancelled. Pass ``abandon_on_cancel=False`` for calls whose
        answer hands something over (an assignment, a registered instance): an answer that had
        already arrived when the cancellation came is then returned instead of lost (the
        caller's next checkpoint sees the cancellation).
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
        name = method.route
        message = cast(Any, request).SerializeToString()
        with trio.move_on_after(budget):
            connection = await self._connection(name)
            answer = await connection.call(
                name.encode("ascii"),
                message,
                budget,
                self._metadata,
                keep_answer=not abandon_on_cancel,
            )
            return _reply(method, answer)
        raise DeadlineExceededError(f"no answer within the {budget:g} s deadline", method=name)

    async def _connection(self, name: str) -> ClientConnection:
        index = self._next_connection
        self._next_connection = (index + 1) % len(self._connections)
        connection = self._connections[index]
        if connection is not None and connection.accepting:
            return connection
        async with self._connecting[index]:
            connection = self._connections[index]
            if connection is None or not connection.accepting:
                connection = await self._connect(name)
                self._connections[index] = connection
                self._nursery.start_soon(connection.run)
            return connection

    async def _connect(self, name: str) -> ClientConnection:
        host, port = self.endpoint.host, self.endpoint.port
        try:
            tcp = await trio.open_tcp_stream(host, port)
        except OSError as exc:
            reason = exc.strerror or str(exc) or type(exc).__name__
            raise UnavailableError(f"cannot reach the server: {reason}", method=name) from exc
        authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        if self._tls is None:
            return ClientConnection(tcp, authority.encode("ascii"), b"http")
        server_name = self.config.tls.server_name if self.config.tls is not None else None
        try:
            secured = trio.SSLStream(tcp, self._tls, server_hostname=server_name or host)
            await secured.do_handshake()
        except trio.BrokenResourceError as exc:
            await trio.aclose_forcefully(tcp)
            raise UnavailableError(
                f"cannot reach the server: the TLS handshake failed: {exc.__cause__ or exc}",
                method=name,
            ) from exc
        except BaseException:  # cancelled mid-handshake (the deadline), say
            await trio.aclose_forcefully(tcp)
            raise
        return ClientConnection(secured, authority.encode("ascii"), b"https")


def _reply(method: UnaryMethod[Any, _ResponseT], answer: Answer) -> _ResponseT:
    """The reply an answer carries, or the ``RpcError`` it stands for."""
    name = method.route
    if answer.failure is not None:
        raise UnavailableError(
            f"the connection failed during the call: {answer.failure}", method=name
        )
    if answer.grpc_status is None:
        if answer.reset_code is not None:
            raise UnavailableError(
                f"the server reset the call's stream (HTTP/2 error code {answer.reset_code})",
                method=name,
            )
        if answer.http_status != b"200":
            status = status_for_http(answer.http_status)
            raise error_for_status(
                status, f"the server answered HTTP status {answer.http_status!r}", method=name
            )
        raise UnknownError("the server's answer carries no grpc-status", method=name)
    try:
        status = Status(answer.grpc_status)
    except ValueError:
        status = Status.UNKNOWN
    if status is not Status.OK:
        raise error_for_status(status, answer.grpc_message, method=name)
    message = message_of(answer)
    if message is None:
        raise error_for_status(
            Status.OK, "the server answered OK without one whole reply message", method=name
        )
    try:
        return method.reply_type.FromString(message)  # type: ignore[attr-defined,no-any-return]
    except (DecodeError, ValueError) as exc:
        raise InternalError(
            f"the reply is not a valid {method.reply_type.__name__}: {exc}", method=name
        ) from exc


def call_budget(deadline: float | None, default: float) -> float:
    """The seconds a call may take: ``deadline``, else ``default``; positive and finite."""
    budget = default if deadline is None else deadline
    if not (budget > 0 and math.isfinite(budget)):
        raise ValueError(
            f"an RPC deadline must be a positive, finite number of seconds, got {budget!r}"
        )
    return budget
