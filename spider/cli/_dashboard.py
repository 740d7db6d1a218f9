"""``spider dashboard``: serve the web dashboard (docs/dashboard.md) for the storage the
command line talks to, until Ctrl-C."""

from __future__ import annotations

import argparse
import functools
from typing import Any, Final

import trio

from spider.cli._exit import CliExit
from spider.cli._output import Output
from spider.client import SpiderClient
from spider.dashboard import run_dashboard
from spider.observability import MetricsConfig, Readiness, serve_http

DEFAULT_PORT: Final = 9465
"""Next to the embedded cluster's 9464, which serves its own dashboard."""


def add_dashboard_command(commands: Any) -> None:
    """Add ``dashboard`` to the ``spider`` subcommands."""
    dashboard = commands.add_parser(
        "dashboard",
        help="serve the web dashboard for this storage until Ctrl-C",
        description="Serve the web dashboard (the cluster, its jobs, each job's task graph) "
        "for the storage the command line talks to, with the same credentials, until Ctrl-C. "
        "Anyone who can reach the address sees what those credentials see: keep it on "
        "loopback unless that is meant. See docs/dashboard.md.",
    )
    dashboard.add_argument(
        "--host", default="127.0.0.1", help="the address to serve on (default 127.0.0.1)"
    )
    dashboard.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        help=f"the port to serve on (default {DEFAULT_PORT}; 0: a free one)",
    )


async def serve_dashboard(
    client: SpiderClient, args: argparse.Namespace, output: Output
) -> CliExit:
    """Serve until cancelled (Ctrl-C); print where first."""
    http = MetricsConfig(args.host, args.port)
    readiness = Readiness()  # /readyz: ready while storage answers the dashboard's reads
    async with trio.open_nursery() as nursery:
        pages = await nursery.start(functools.partial(run_dashboard, client, readiness=readiness))
        serve = functools.partial(serve_http, pages=pages, readiness=readiness)
        port: int = await nursery.start(serve, http, "dashboard")
        url = f"http://{args.host}:{port}/"
        output.result(
            {"dashboard": url, "storage": str(client.endpoint)},
            f"Spider-py dashboard for storage at {client.endpoint} on {url}; Ctrl-C stops it.",
        )
    return CliExit.OK
