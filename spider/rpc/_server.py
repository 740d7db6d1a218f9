"""``serve``: run gRPC services whose handlers are plain Trio code.

A service is an instance of a generated service base class (``SchedulerServiceBase``...,
written by ``tools/gen_protos.py``) whose methods are overridden with Trio ``async def`` s that
take the request message and return the reply. Each connection is served on the Trio thread
(``ServerConnection``, HTTP/2 framed by ``_frames``), and each call runs as a Trio task in its
connection's nursery, inside ``serve``'s, so a handler may use any Trio primitive. ``serve``
translates what a handler raises: an ``RpcError`` becomes its status and message, anything
else becomes ``INTERNAL`` (logged with its traceback) and the server keeps serving.
"""

from __future__ import annotations

import collections
import contextlib
import contextvars
import functools
import ipaddress
import logging
import socket
import ssl
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, NoReturn

import attrs
import trio

from spider.rpc._config import ServerConfig
from spider.rpc._log_limit import PeerLogLimit
from spider.rpc._mapping import error_for_status
from spider.rpc._method import ServiceBase, UnaryMethod
from spider.rpc._metrics import measured
from spider.rpc._receive import bounded_status_message, receive_request
from spider.rpc._server_connection import ServerCall, ServerConnection
from spider.rpc._tls import server_context
from spider.rpc.auth import ClusterAuth
from spider.rpc.errors import InternalError, ListenError, RpcError, Status, UnimplementedError

LOGGER = logging.getLogger("spider.rpc")

DEFAULT_SERVER_CONFIG = ServerConfig()

LISTEN_BACKLOG = socket.SOMAXCONN

_TrioHandler = Callable[[Any], Awaitable[Any]]
_CallHandler = Callable[[ServerCall], Awaitable[None]]

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
    """Serve ``services`` on ``host:port`` until cancelled.

    Start it with ``port = await nursery.start(serve, services, host, port)``:
    ``task_status.started`` reports the bound port once the server accepts connections
    (``port=0`` picks a free one). Every method of every service must be unary-unary, as all of
    Spider's are; a service whose methods are not overridden answers ``UNIMPLEMENTED``, and so
    does a route no service serves.

    Each call runs its handler as a task in a nursery inside ``serve``, in a copy of ``serve``'s
    context; the handler is cancelled if the client resets the call, its connection is lost or
    its deadline passes.

    Raises ``ListenError`` (before ``started``) if the address cannot be bound.

    On cancellation the running handlers are cancelled (they see ``trio.Cancelled``), the
    listener and every client connection are closed (callers get ``UnavailableError``, which is
    transient), and ``serve`` returns once the handlers have finished. Writing each connection's
    GOAWAY to a client that does not read is bounded by ``config.shutdown_grace``.
    """
    # Check the services and bind before opening the nursery, so that these errors reach the
    # starter as themselves rather than inside an exception group.
    methods = [_trio_methods(service) for service in services]
    tls = server_context(config.tls) if config.tls is not None else None
    listener = await _listen(host, port)
    server = _Server(config, tls)
    refusals = PeerLogLimit()  # this server's refused-call lines, per client host
    for service_methods in methods:
        server.routes.update(
            _adapt(service_methods, server, config.max_request_bytes, config.auth, refusals)
        )
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
        async with trio.open_nursery() as connections:
            # serve_listeners closes the listener when it is cancelled.
            connections.start_soon(
                functools.partial(
                    trio.serve_listeners,
                    server.serve_connection,
                    [trio.SocketListener(trio.socket.from_stdlib_socket(listener))],
                    handler_nursery=connections,
                )
            )
            task_status.started(bound_port)
            await trio.sleep_forever()
    finally:
        listener.close()
        LOGGER.info(
            "stopped serving on port %d after %d calls",
            bound_port,
            server.calls.total(),
            extra={"rpc_port": bound_port, "rpc_calls": dict(server.calls)},
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
    """A listening, non-blocking TCP socket bound to ``host:port``."""
    try:
        infos = await trio.socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
        family, _, _, _, address = infos[0]
        listener = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    except OSError as exc:
        raise ListenError(
            f"cannot listen for gRPC on {host}:{port}: {exc}; check the host name"
        ) from exc
    try:
        # Rebind right after a restart even while the previous server's connections sit in
        # TIME_WAIT (what trio.open_tcp_listeners and asyncio's create_server do on POSIX).
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(address)
        listener.listen(LISTEN_BACKLOG)
        listener.setblocking(False)
    except OSError as exc:
        listener.close()
        raise ListenError(
            f"cannot listen for gRPC on {host}:{port}: {exc.strerror or exc}; check that the "
            "address is local and that no other process uses the port"
        ) from exc
    return listener


@attrs.define(eq=False)
class _Server:
    """What ``serve``'s connections share: the routes, and the calls received."""

    _config: ServerConfig
    _tls: ssl.SSLContext | None
    routes: dict[str, _CallHandler] = attrs.field(factory=dict)
    calls: collections.Counter[str] = attrs.field(factory=collections.Counter)
    """Calls received, by route: logged when ``serve`` stops, so an operator (and
    ``benchmarks/e2e.py``) can see how many RPCs the work took."""

    async def serve_connection(self, stream: trio.SocketStream) -> None:
        """Serve one accepted connection until it ends (a task in ``serve``'s nursery)."""
        try:
            address = stream.socket.getpeername()
        except OSError:  # already gone
            await trio.aclose_forcefully(stream)
            return
        peer = (str(address[0]), int(address[1]))
        transport: trio.abc.Stream = stream
        if self._tls is not None:
            transport = trio.SSLStream(stream, self._tls, server_side=True)
        connection = ServerConnection(
            transport,
            peer,
            self._dispatch,
            self._config.max_request_bytes,
            self._config.shutdown_grace,
        )
        try:
            await connection.run()
        except Exception:
            # Whatever one client's connection meets (a flaw in the framing a peer found,
            # say), it must not end serve: the other clients are served on.
            LOGGER.exception(
                "the connection from %s failed; closed", peer, extra={"rpc_peer": peer}
            )

    async def _dispatch(self, call: ServerCall) -> None:
        """Run one call and answer it; a task in its connection's nursery."""
        with call.scope:
            if call.timeout is not None:
                call.scope.deadline = trio.current_time() + call.timeout
            try:
                await self._answer(call)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return  # the stream or the connection is gone, even for an error's answer
        if call.scope.cancelled_caught and not call.reset and not call.answered:
            # Only the call's own deadline cancels this scope without a reset.
            call.send_status_nowait(
                Status.DEADLINE_EXCEEDED, "the call's deadline passed on the server"
            )
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                await call.flush()

    async def _answer(self, call: ServerCall) -> None:
        """Run the call's handler; answer what it raises. Raises ``trio.BrokenResourceError``
        (or ``ClosedResourceError``) when the answer cannot be sent."""
        handler = self.routes.get(call.route)
        try:
            if handler is None:
                raise UnimplementedError(f"{call.route} is not served here")
            await handler(call)
        except RpcError as error:
            if not call.reset:
                await call.send_status(error.status, error.message)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            raise
        except Exception:
            LOGGER.exception(
                "serving %s failed; answering INTERNAL",
                call.route,
                extra={"rpc_method": call.route, "rpc_peer": call.peer},
            )
            if not call.reset and not call.answered:
                await call.send_status(Status.INTERNAL, "internal error; see the server's log")


def _run_undelivered(route: str, callbacks: list[UndeliveredCallback]) -> None:
    """Run a call's ``on_undelivered`` callbacks; one that fails is logged, the others run."""
    for callback in callbacks:
        try:
            callback()
        except Exception:
            LOGGER.exception(
                "an on_undelivered callback of %s failed",
                route,
                extra={"rpc_method": route},
            )


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
    server: _Server,
    max_request_bytes: int,
    auth: ClusterAuth | None = None,
    refusals: PeerLogLimit | None = None,
) -> dict[str, _CallHandler]:
    """A route table whose call handlers run ``methods``, counted in ``server.calls``, behind
    ``auth``'s check for the routes it guards; refused calls are logged within ``refusals``'
    limit."""
    refusals = refusals or PeerLogLimit()
    return {
        method.route: measured(
            method.route,
            _guarded(
                auth,
                method.route,
                _call_handler(method, server, max_request_bytes, refusals),
                refusals,
            ),
        )
        for method in methods
    }


def _guarded(
    auth: ClusterAuth | None,
    route: str,
    handler: _CallHandler,
    refusals: PeerLogLimit,
) -> _CallHandler:
    return handler if auth is None else auth.guarded(route, handler, refusals)


def _call_handler(
    method: _TrioMethod, server: _Server, max_request_bytes: int, refusals: PeerLogLimit
) -> _CallHandler:
    route = method.route
    request_type = method.method.request_type

    async def handle(call: ServerCall) -> None:
        server.calls[route] += 1
        request = await receive_request(call, request_type, max_request_bytes, refusals)
        callbacks: list[UndeliveredCallback] = []
        delivered = False
        try:
            response = await _run_trio_handler(
                route, method.handle, request, method.reply_type, call, callbacks
            )
            await call.send_reply(response.SerializeToString())
            delivered = True
        finally:
            if not delivered and callbacks:
                _run_undelivered(route, callbacks)

    return handle


async def _run_trio_handler(
    route: str,
    trio_method: _TrioHandler,
    request: object,
    reply_type: type[Any],
    call: ServerCall,
    undelivered: list[UndeliveredCallback],
) -> Any:
    """Run one Trio handler in the call's task (whose context is its own copy of ``serve``'s);
    every ``Exception`` leaves as the ``RpcError`` to answer with, its message bounded."""
    peer = call.peer
    _current_peer.set(peer)
    _current_metadata.set(call.metadata)
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
        raise error_for_status(exc.status, bounded_status_message(exc.message)) from exc


async def invoke_handler(
    route: str,
    trio_method: _TrioHandler,
    request: object,
    reply_type: type[Any],
    peer: tuple[str, int] | None = None,
) -> object:
    """``await trio_method(request)`` as a served call sees it: an ``RpcError`` (UNIMPLEMENTED
    from a generated base class, say) passes, any other exception and a reply that is not a
    ``reply_type`` are logged and become ``InternalError``.

    ``serve`` and ``LocalChannel`` both run handlers through this.
    """
    try:
        response = await trio_method(request)
    except RpcError:
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
