"""``serve``: run gRPC services whose handlers are plain Trio code.

A service is an instance of a generated service base class (``SchedulerServiceBase``...,
written by ``tools/gen_protos.py``) whose methods are overridden with Trio ``async def`` s that
take the request message and return the reply. grpclib parses and answers the stream in
the bridge's asyncio thread; each handler runs as a Trio task in a nursery ``serve`` owns and may
use any Trio primitive. ``serve`` translates
what a handler raises: an ``RpcError`` becomes its status and message, anything else becomes
``INTERNAL`` (logged with its traceback) and the server keeps serving.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import contextvars
import functools
import ipaddress
import logging
import socket
import ssl
import weakref
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from typing import Any, NoReturn

import attrs
import grpclib.const
import grpclib.server
import outcome
import trio
from grpclib.exceptions import GRPCError
from grpclib.protocol import H2Protocol

from spider.rpc._bridge import AsyncioBridge, current_bridge
from spider.rpc._config import ServerConfig
from spider.rpc._log_limit import PeerLogLimit
from spider.rpc._method import ServiceBase, UnaryMethod
from spider.rpc._metrics import measured
from spider.rpc._receive import bounded_status_message, receive_request
from spider.rpc._tls import server_context
from spider.rpc.auth import ClusterAuth
from spider.rpc.errors import InternalError, ListenError, RpcError, Status

LOGGER = logging.getLogger("spider.rpc")

DEFAULT_SERVER_CONFIG = ServerConfig()

_TrioHandler = Callable[[Any], Awaitable[Any]]

_current_peer: contextvars.ContextVar[tuple[str, int] | None] = contextvars.ContextVar(
    "spider_rpc_current_peer", default=None
)


_current_metadata: contextvars.ContextVar[Mapping[str, str | bytes] | None] = (
    contextvars.ContextVar("spider_rpc_current_metadata", default=None)
)


def current_peer() -> tuple[str, int] | None:
    """The client's ``(address, port)`` inside a handler started by ``serve``, else ``None``."""
    return _current_peer.get()


def current_metadata() -> Mapping[str, str | bytes] | None:
    """The call's metadata inside a handler started by ``serve`` (``-bin`` keys as bytes, the
    others as str; the first value of a repeated key), else ``None``: an in-process call through
    ``LocalChannel``, from a part of the same process, carries none."""
    return _current_metadata.get()


UndeliveredCallback = Callable[[], object]

_undelivered: contextvars.ContextVar[list[UndeliveredCallback] | None] = contextvars.ContextVar(
    "spider_rpc_undelivered", default=None
)


def on_undelivered(callback: UndeliveredCallback) -> bool:
    """Inside a handler started by ``serve``: run ``callback`` (in Trio, once) if this call's
    response does not leave the server, because the call was cancelled (client gone, deadline
    passed, server stopping) once the handler had finished, or sending it failed.

    For handlers whose response hands something over (an assignment, a lease): the callback
    takes it back. A response that was sent but lost in the network is not detected. Returns
    False, and does nothing, outside such a handler (a handler called directly in a test).
    """
    callbacks = _undelivered.get()
    if callbacks is None:
        return False
    callbacks.append(callback)
    return True


async def serve(
    services: Sequence[ServiceBase],
    host: str,
    port: int,
    *,
    config: ServerConfig = DEFAULT_SERVER_CONFIG,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> NoReturn:
    """Serve ``services`` on ``host:port`` until cancelled; needs an open RPC bridge.

    Start it with ``port = await nursery.start(serve, services, host, port)``:
    ``task_status.started`` reports the bound port once the server accepts connections
    (``port=0`` picks a free one). Every method of every service must be unary-unary, as all of
    Spider's are; a service whose methods are not overridden answers ``UNIMPLEMENTED``, and so
    does a route no service serves.

    Each call runs its handler as a task in a nursery that ``serve`` owns; the handler is
    cancelled if the client cancels the call or its deadline passes.

    Raises ``ListenError`` (before ``started``) if the address cannot be bound.

    On cancellation the running handlers are cancelled (they see ``trio.Cancelled``), new calls
    are refused with ``UNAVAILABLE``, the listener and every client connection are closed
    (callers get ``UnavailableError``, which is transient), and ``serve`` returns once the
    handlers have finished. Closing the asyncio side is bounded by ``config.shutdown_grace``.
    """
    bridge = current_bridge()
    # Check the services and bind before opening the handlers' nursery, so that these errors
    # reach the starter as themselves rather than inside an exception group.
    methods = [_trio_methods(service) for service in services]
    tls = server_context(config.tls) if config.tls is not None else None
    listener = await _listen(host, port)
    async with trio.open_nursery() as handlers:
        launcher = _HandlerLauncher(bridge, handlers)
        refusals = PeerLogLimit()  # this server's refused-call lines, per client host
        servables = [
            _TrioService(
                _adapt(service_methods, launcher, config.max_request_bytes, config.auth, refusals)
            )
            for service_methods in methods
        ]
        try:
            server = await bridge.run(_start_server, servables, listener, tls)
        except BaseException:
            listener.close()
            raise
        bound_port: int = listener.getsockname()[1]
        names = ", ".join(type(service).__name__ for service in services)
        LOGGER.info(
            "serving %s on %s port %d",
            names,
            host,
            bound_port,
            extra={
                "rpc_services": names,
                "rpc_host": host,
                "rpc_port": bound_port,
                "rpc_tls": config.tls is not None,
                "rpc_auth": config.auth is not None,
            },
        )
        _warn_if_exposed(names, host, bound_port, config)
        try:
            task_status.started(bound_port)
            await trio.sleep_forever()
        finally:
            launcher.refuse_new_calls()
            # Stopping goes on in the asyncio thread however long it takes; serve waits for
            # it only up to the grace, so a busy or wedged asyncio thread cannot hold it.
            stopped = trio.Event()
            _stop_in_background(server, bridge, stopped)
            with trio.move_on_after(config.shutdown_grace, shield=True) as stopping:
                await stopped.wait()
            if stopping.cancelled_caught:
                LOGGER.warning(
                    "the server on port %d did not close within %g s",
                    bound_port,
                    config.shutdown_grace,
                    extra={"rpc_port": bound_port, "shutdown_grace_s": config.shutdown_grace},
                )
            LOGGER.info(
                "stopped serving on port %d after %d calls",
                bound_port,
                launcher.calls.total(),
                extra={"rpc_port": bound_port, "rpc_calls": dict(launcher.calls)},
            )


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine only (an empty host or ``0.0.0.0`` is every
    interface; a host name other than ``localhost`` counts as reachable from outside)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _warn_if_exposed(names: str, host: str, port: int, config: ServerConfig) -> None:
    if is_loopback(host) or (config.auth is not None and config.tls is not None):
        return
    missing = " and ".join(
        what
        for what, absent in (
            ("a cluster credential", config.auth is None),
            ("TLS", config.tls is None),
        )
        if absent
    )
    LOGGER.warning(
        "SECURITY: %s listens on %s port %d without %s: anyone who can reach this port can "
        "%s. Set security.cluster_token_file and security.tls (docs/security.md), or listen "
        "on 127.0.0.1",
        names,
        host or "every interface",
        port,
        missing,
        "pose as an execution manager or scheduler" if config.auth is None else "read the traffic",
        extra={
            "rpc_host": host,
            "rpc_port": port,
            "rpc_tls": config.tls is not None,
            "rpc_auth": config.auth is not None,
        },
    )


async def _listen(host: str, port: int) -> socket.socket:
    """A bound, non-blocking TCP socket for ``host:port`` (asyncio calls ``listen`` on it)."""
    try:
        infos = await trio.socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
        family, _, _, _, address = infos[0]
        # grpclib sets TCP_NODELAY on accepted connections only if the listener's proto is
        # IPPROTO_TCP; with proto 0, Nagle and delayed ACKs add 40 ms to every call.
        listener = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    except OSError as exc:
        raise ListenError(
            f"cannot listen for gRPC on {host}:{port}: {exc}; check the host name"
        ) from exc
    try:
        # What asyncio's create_server does on POSIX: rebind right after a restart even while
        # the previous server's connections sit in TIME_WAIT.
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(address)
        listener.setblocking(False)
    except OSError as exc:
        listener.close()
        raise ListenError(
            f"cannot listen for gRPC on {host}:{port}: {exc.strerror or exc}; check that the "
            "address is local and that no other process uses the port"
        ) from exc
    return listener


async def _start_server(
    servables: Collection[_TrioService], listener: socket.socket, tls: ssl.SSLContext | None
) -> _ConnectionTrackingServer:
    # grpclib binds the server to the running asyncio loop when it is built, so build it there.
    server = _ConnectionTrackingServer(servables)
    await server.start(sock=listener, ssl=tls)
    return server


def _stop_in_background(
    server: _ConnectionTrackingServer, bridge: AsyncioBridge, stopped: trio.Event
) -> None:
    def finished(task: asyncio.Task[None]) -> None:  # asyncio thread
        if not task.cancelled() and task.exception() is not None:
            LOGGER.error("stopping a gRPC server failed", exc_info=task.exception())
        with contextlib.suppress(trio.RunFinishedError):
            bridge.to_trio(stopped.set)

    bridge.start_background(_stop_server, server, done=finished)


async def _stop_server(server: _ConnectionTrackingServer) -> None:
    # close() stops the listener and cancels grpclib's handler tasks (which cancel their Trio
    # handlers); open connections must be closed too, or grpclib keeps serving new streams on
    # them. A connection accepted just before the listener closed may come up while we wait.
    server.close()
    server.close_connections()
    await server.wait_closed()
    server.close_connections()


class _TrioService:
    """An ``IServable`` whose handlers call Trio code."""

    def __init__(self, mapping: dict[str, grpclib.const.Handler]) -> None:
        self._mapping = mapping

    def __mapping__(self) -> dict[str, grpclib.const.Handler]:
        return self._mapping


class _ConnectionTrackingServer(grpclib.server.Server):
    """A grpclib server that can close its client connections.

    grpclib's ``close()`` only stops the listener and cancels running handlers; open HTTP/2
    connections stay up and keep being served. ``_protocol_factory`` is grpclib's (0.4.9)
    hook for every accepted connection.
    """

    def __init__(self, servables: Collection[_TrioService]) -> None:
        super().__init__(servables)
        # grpclib (0.4.9) answers a route it does not know UNIMPLEMENTED without a
        # content-type, which clients read as UNKNOWN; the fallback answers it properly.
        self._mapping = _UnimplementedFallback(self._mapping)
        self._protocols: weakref.WeakSet[H2Protocol] = weakref.WeakSet()

    def _protocol_factory(self) -> H2Protocol:
        protocol = super()._protocol_factory()
        self._protocols.add(protocol)
        return protocol

    def close_connections(self) -> None:
        for protocol in list(self._protocols):
            # ``processor`` exists once asyncio has called ``connection_made``.
            processor = getattr(protocol, "processor", None)
            if processor is not None:
                processor.close("server is shutting down")
        self._protocols.clear()


class _UnimplementedFallback(dict[str, grpclib.const.Handler]):
    """grpclib's route table, with a handler answering UNIMPLEMENTED for any unknown route."""

    def get(self, route: str, default: object = None) -> grpclib.const.Handler:
        handler = super().get(route)
        if handler is not None:
            return handler
        return grpclib.const.Handler(
            functools.partial(_answer_unimplemented, route),
            grpclib.const.Cardinality.UNARY_UNARY,
            object,
            object,
        )


async def _answer_unimplemented(route: str, stream: grpclib.server.Stream[Any, Any]) -> None:
    del stream  # the request is never read
    raise GRPCError(Status.UNIMPLEMENTED, f"{route} is not served here")


@attrs.define(eq=False)
class _HandlerLauncher:
    """Runs Trio handlers in ``serve``'s nursery on behalf of grpclib's asyncio handler tasks."""

    _bridge: AsyncioBridge
    _nursery: trio.Nursery
    _context: contextvars.Context = attrs.field(factory=contextvars.copy_context)
    """``serve``'s context when it started: handlers run in copies of it. Callbacks from the
    asyncio thread run in Trio's system context, whose variables are not ``serve``'s."""
    _refusing: bool = False
    calls: collections.Counter[str] = attrs.field(factory=collections.Counter)
    """Calls received, by route: logged when ``serve`` stops, so an operator (and
    ``benchmarks/e2e.py``) can see how many RPCs the work took."""

    def report_undelivered(self, route: str, callbacks: list[UndeliveredCallback]) -> None:
        """Run a call's ``on_undelivered`` callbacks in Trio (from the asyncio thread)."""

        def run() -> None:  # Trio thread; must not raise
            for callback in callbacks:
                try:
                    callback()
                except Exception:
                    LOGGER.exception(
                        "an on_undelivered callback of %s failed",
                        route,
                        extra={"rpc_method": route},
                    )

        try:
            self._bridge.to_trio(self._context.run, run)
        except trio.RunFinishedError:
            LOGGER.warning(
                "a response of %s was not delivered after the Trio run ended; its "
                "on_undelivered callbacks did not run",
                route,
                extra={"rpc_method": route},
            )

    def refuse_new_calls(self) -> None:
        """From now on, answer new calls ``UNAVAILABLE`` (the server is stopping)."""
        self._refusing = True

    async def call(self, handler: Callable[[], Awaitable[object]]) -> Any:
        """Asyncio-flavoured: run ``await handler()`` in Trio and return or raise its outcome.

        Cancelling the calling asyncio task cancels the Trio task and waits for it to end.
        """
        done: asyncio.Future[outcome.Outcome[Any]] = asyncio.get_running_loop().create_future()
        scope = trio.CancelScope()

        def settle(result: outcome.Outcome[Any]) -> None:  # asyncio thread
            if not done.done():
                done.set_result(result)

        async def run() -> None:  # Trio task in serve's nursery
            result: outcome.Outcome[Any] = outcome.Error(asyncio.CancelledError())
            try:
                with scope:
                    result = outcome.Value(await handler())
            except GRPCError as error:
                result = outcome.Error(error)
            finally:
                self._bridge.call_soon(settle, result)

        def launch() -> None:  # Trio thread; must not raise
            if self._refusing:
                refusal = GRPCError(Status.UNAVAILABLE, "the server is shutting down; retry")
                self._bridge.call_soon(settle, outcome.Error(refusal))
                return
            # start_soon copies the current context: make it (a copy of) serve's.
            self._context.run(self._nursery.start_soon, run)

        self._bridge.to_trio(launch)
        try:
            result = await asyncio.shield(done)
        except asyncio.CancelledError:
            # grpclib cancelled us: the client reset the stream, the deadline passed or the
            # server is closing. Cancel the Trio handler and wait until it has finished.
            self._bridge.to_trio(scope.cancel)
            while not done.done():
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.shield(done)
            raise
        return result.unwrap()


@attrs.frozen
class _TrioMethod:
    route: str
    handle: _TrioHandler
    reply_type: type[Any]
    method: UnaryMethod[Any, Any]


def _trio_methods(service: ServiceBase) -> list[_TrioMethod]:
    """The Trio method behind each route of ``service``, or a ``TypeError`` saying what is wrong."""
    if not isinstance(service, ServiceBase):
        raise TypeError(
            f"{type(service).__name__} is not a generated service base class (such as "
            "SchedulerServiceBase); spider.rpc.serve only runs those"
        )
    return [
        _TrioMethod(method.route, getattr(service, method.name), method.reply_type, method)
        for method in service.rpc_methods
    ]


def _adapt(
    methods: list[_TrioMethod],
    launcher: _HandlerLauncher,
    max_request_bytes: int,
    auth: ClusterAuth | None = None,
    refusals: PeerLogLimit | None = None,
) -> dict[str, grpclib.const.Handler]:
    """A grpclib mapping whose stream-level handlers run ``methods`` through ``launcher``,
    behind ``auth``'s check for the routes it guards; refused calls are logged within
    ``refusals``' limit."""
    refusals = refusals or PeerLogLimit()
    return {
        method.route: grpclib.const.Handler(
            measured(
                method.route,
                _guarded(
                    auth,
                    method.route,
                    _stream_handler(
                        method.route,
                        method.handle,
                        method.reply_type,
                        launcher,
                        max_request_bytes,
                        refusals,
                    ),
                    refusals,
                ),
            ),
            grpclib.const.Cardinality.UNARY_UNARY,
            method.method.request_type,
            method.reply_type,
        )
        for method in methods
    }


def _guarded(
    auth: ClusterAuth | None,
    route: str,
    handler: Callable[[grpclib.server.Stream[Any, Any]], Awaitable[None]],
    refusals: PeerLogLimit,
) -> Callable[[grpclib.server.Stream[Any, Any]], Awaitable[None]]:
    return handler if auth is None else auth.guarded(route, handler, refusals)


def _stream_handler(
    route: str,
    trio_method: _TrioHandler,
    reply_type: type[Any],
    launcher: _HandlerLauncher,
    max_request_bytes: int,
    refusals: PeerLogLimit,
) -> Callable[[grpclib.server.Stream[Any, Any]], Awaitable[None]]:
    async def handle(stream: grpclib.server.Stream[Any, Any]) -> None:  # asyncio thread
        launcher.calls[route] += 1
        request = await receive_request(stream, route, max_request_bytes, refusals)
        peer = stream.peer.addr() if stream.peer is not None else None
        metadata: Mapping[str, str | bytes] = stream.metadata or {}
        callbacks: list[UndeliveredCallback] = []
        delivered = False
        try:
            response = await launcher.call(
                functools.partial(
                    _run_trio_handler,
                    route,
                    trio_method,
                    request,
                    reply_type,
                    peer,
                    metadata,
                    callbacks,
                )
            )
            await stream.send_message(response)
            delivered = True
        finally:
            # ``call`` returns or raises only once the Trio handler has ended, so the list is
            # complete here.
            if not delivered and callbacks:
                launcher.report_undelivered(route, callbacks)

    return handle


async def _run_trio_handler(
    route: str,
    trio_method: _TrioHandler,
    request: object,
    reply_type: type[Any],
    peer: tuple[str, int] | None,
    metadata: Mapping[str, str | bytes],
    undelivered: list[UndeliveredCallback],
) -> object:
    """Run one Trio handler; every ``Exception`` leaves as the ``GRPCError`` to answer with."""
    _current_peer.set(peer)
    _current_metadata.set(metadata)
    _undelivered.set(undelivered)
    try:
        return await invoke_handler(route, trio_method, request, reply_type, peer)
    except RpcError as exc:
        LOGGER.debug(
            "%s answered %s: %s",
            route,
            exc.status.name,
            exc.message,
            extra={"rpc_method": route, "rpc_status": exc.status.name, "rpc_peer": peer},
        )
        raise GRPCError(exc.status, bounded_status_message(exc.message)) from exc


async def invoke_handler(
    route: str,
    trio_method: _TrioHandler,
    request: object,
    reply_type: type[Any],
    peer: tuple[str, int] | None = None,
) -> object:
    """``await trio_method(request)`` as a served call sees it: an ``RpcError`` or a
    ``GRPCError`` (UNIMPLEMENTED from a generated base class) passes, any other exception and
    a reply that is not a ``reply_type`` are logged and become ``InternalError``.

    ``serve`` and ``LocalChannel`` both run handlers through this.
    """
    try:
        response = await trio_method(request)
    except (RpcError, GRPCError):
        raise
    except Exception as exc:
        LOGGER.exception(
            "handler for %s failed; answering INTERNAL",
            route,
            extra={"rpc_method": route, "rpc_peer": peer},
        )
        raise InternalError(
            f"internal error while handling {route}; see the server's log", method=route
        ) from exc
    if not isinstance(response, reply_type):
        LOGGER.error(
            "handler for %s returned %r instead of a %s; answering INTERNAL",
            route,
            response,
            reply_type.__name__,
            extra={"rpc_method": route, "rpc_peer": peer},
        )
        raise InternalError(
            f"internal error while handling {route}; see the server's log", method=route
        )
    return response
