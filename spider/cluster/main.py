"""``python -m spider.em``: the execution manager's command line, with the embedded cluster.

``spider.em.main`` owns the command line, the signals and the exit statuses; this module adds
the one thing the EM package must not know: how to run the EM inside a single-node cluster when
no endpoints are given. ``spider/em/__main__.py`` calls ``main`` here, so the command is the
same in both modes (docs/execution-manager.md, "The embedded single-node cluster").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import trio

from spider.cluster.embedded import EmbeddedEndpoints, run_embedded_cluster
from spider.core.exception_groups import leaves
from spider.em.config import ExecutionManagerConfig
from spider.em.errors import ExecutionManagerError
from spider.em.main import main as em_main
from spider.em.stop import EmStop


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """Run the execution manager, in the embedded cluster without endpoints; the exit status."""
    return em_main(argv, environ, embedded=run_embedded_em)


async def run_embedded_em(config: ExecutionManagerConfig, stop: EmStop) -> None:
    """Run the embedded cluster until the EM stops, telling the person who started it where.

    Raises the EM's ``ExecutionManagerError`` bare, as the connected mode does.
    """
    try:
        async with trio.open_nursery() as nursery:
            endpoints: EmbeddedEndpoints = await nursery.start(run_embedded_cluster, config, stop)
            # A plain line on stdout too: the logs are JSON by default, and a person who just
            # started the cluster needs to know where to point the client.
            metrics = (
                ""
                if endpoints.metrics is None
                else f", metrics at http://{endpoints.metrics}/metrics"
            )
            if endpoints.dashboard is not None:
                metrics += f", dashboard at http://{endpoints.dashboard}/"
            print(
                f"Spider-py embedded cluster: storage at {endpoints.storage}, scheduler at "
                f"{endpoints.scheduler}{metrics}, data in {config.embedded.data_dir}. "
                "Stop it with Ctrl-C.",
                flush=True,
            )
    except BaseExceptionGroup as group:
        # The cluster's only child raises bare errors; unwrap the group the nursery adds.
        failures = [leaf for leaf in leaves(group) if isinstance(leaf, ExecutionManagerError)]
        if len(failures) == 1:
            raise failures[0] from None
        raise
