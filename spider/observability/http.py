"""``serve_http``: ``/metrics`` (Prometheus text format), ``/healthz`` and ``/readyz`` on one port,
plus any pages a caller adds (the embedded cluster adds the dashboard's).

The server is the standard library's threading HTTP server on a thread of its own: a scrape or a
probe never waits for the Trio loop, and a busy loop never delays an answer to a liveness probe
(which is the point of one). ``/readyz`` reads the ``Readiness`` board, whose conditions the
service's parts set from Trio.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import urllib.parse
from collections.abc import Callable, Mapping
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Final

import attrs
import prometheus_client
import trio
from prometheus_client.registry import CollectorRegistry

from spider.observability.config import MetricsConfig
from spider.observability.readiness import READINESS, Readiness, all_ready
from spider.rpc import ListenError

LOGGER: Final = logging.getLogger("spider.observability")

Answer = tuple[HTTPStatus, str, bytes]
"""Status, content type, body."""


@attrs.frozen
class HttpRequest:
    """A GET request as a route sees it."""

    path: str
    query: Mapping[str, list[str]] = attrs.field(factory=dict)

    def first(self, name: str) -> str | None:
        """The first value of query parameter ``name``, if given."""
        values = self.query.get(name)
        return values[0] if values else None


Route = Callable[[HttpRequest], Answer]
"""Answers a path; a route whose key ends in ``/`` answers every path under it."""

_POLL_INTERVAL_SEC: Final = 0.1
"""How long stopping the server may wait for its accept loop to notice."""


async def serve_http(
    config: MetricsConfig,
    name: str,
    *,
    readiness: Readiness = READINESS,
    registry: CollectorRegistry = prometheus_client.REGISTRY,
    pages: Mapping[str, Route] | None = None,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the endpoints, and ``pages`` if given, on ``config``'s address until cancelled,
    logging where (``name``: the service, for the line); ``task_status`` gets the bound port.
    ``ListenError`` if the address cannot be bound."""
    routes: dict[str, Route] = {
        **(pages or {}),
        "/metrics": lambda request: _metrics(registry),
        "/healthz": lambda request: (HTTPStatus.OK, "text/plain; charset=utf-8", b"ok\n"),
        "/readyz": lambda request: _readyz(readiness),
    }
    server = _bind(config, routes)
    thread = threading.Thread(
        target=server.serve_forever,
        kwargs={"poll_interval": _POLL_INTERVAL_SEC},
        name="spider-http",
        daemon=True,
    )
    thread.start()
    port: int = server.server_address[1]
    LOGGER.info(
        "%s metrics on http://%s:%d/metrics (and /healthz, /readyz)",
        name,
        config.host,
        port,
        extra={"metrics_host": config.host, "metrics_port": port},
    )
    try:
        task_status.started(port)
        await trio.sleep_forever()
    finally:
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(server.shutdown)
        server.server_close()


def _bind(config: MetricsConfig, routes: Mapping[str, Route]) -> ThreadingHTTPServer:
    port = config.port or 0
    try:
        family = socket.getaddrinfo(config.host, port, type=socket.SOCK_STREAM)[0][0]
    except OSError as exc:
        raise ListenError(
            f"cannot serve metrics on {config.host}:{port}: {exc}; check metrics.host"
        ) from exc

    class Server(ThreadingHTTPServer):
        address_family = family
        daemon_threads = True

    handler = type("Handler", (_Handler,), {"routes": routes})
    try:
        return Server((config.host, port), handler)
    except OSError as exc:
        raise ListenError(
            f"cannot serve metrics on {config.host}:{port}: {exc.strerror or exc}; check that "
            "the address is local and that no other process uses the port (metrics.port)"
        ) from exc


class _Handler(BaseHTTPRequestHandler):
    routes: Mapping[str, Route] = {}
    server_version = "spider-py"

    def do_GET(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        route = self.routes.get(url.path) or _under(self.routes, url.path)
        if route is None:
            status, content_type, body = (
                HTTPStatus.NOT_FOUND,
                "text/plain; charset=utf-8",
                f"no such page; try {', '.join(self.routes)}\n".encode(),
            )
        else:
            request = HttpRequest(url.path, urllib.parse.parse_qs(url.query))
            try:
                status, content_type, body = route(request)
            except Exception:
                LOGGER.exception("http: %s failed", url.path)
                status, content_type, body = (
                    HTTPStatus.INTERNAL_SERVER_ERROR,
                    "text/plain; charset=utf-8",
                    b"internal error; see the service's log\n",
                )
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        # Probes come every few seconds: one line each would drown the service's own.
        LOGGER.debug("http: " + format, *args)


def _under(routes: Mapping[str, Route], path: str) -> Route | None:
    """The route of the longest ``.../`` key that ``path`` is under."""
    prefixes = [key for key in routes if key.endswith("/") and path.startswith(key)]
    return routes[max(prefixes, key=len)] if prefixes else None


def _metrics(registry: CollectorRegistry) -> Answer:
    return (
        HTTPStatus.OK,
        prometheus_client.CONTENT_TYPE_LATEST,
        prometheus_client.generate_latest(registry),
    )


def _readyz(readiness: Readiness) -> Answer:
    report = readiness.report()
    ready = all_ready(report)  # the same reading as the body shows
    body = json.dumps({"ready": ready, "conditions": report}, sort_keys=True).encode() + b"\n"
    status = HTTPStatus.OK if ready else HTTPStatus.SERVICE_UNAVAILABLE
    return status, "application/json", body
