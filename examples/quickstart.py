"""Run the word-count job on an embedded single-node cluster, start to finish.

Starts storage (SQLite in a temporary directory), the scheduler and an execution manager with
two executors in this process, submits ``examples/wordcount.py``'s job through the client,
shows its progress, prints the word counts, and stops the cluster::

    python examples/quickstart.py
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import _paths
import trio
import wordcount
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from spider.client import JobProgress, open_client
from spider.cluster import open_embedded_cluster
from spider.core.logging import configure_logging
from spider.em.config import EmbeddedConfig, ExecutionManagerConfig, TaskExecutorConfig

CONSOLE = Console()


async def main(data_dir: Path) -> None:
    config = ExecutionManagerConfig(
        task_executor=TaskExecutorConfig(package_dir=_paths.PACKAGE_DIR),
        embedded=EmbeddedConfig(data_dir=data_dir, storage_port=0, scheduler_port=0),
        executors=2,
        scheduler_poll_wait_ms=200,
    )
    job = wordcount.job()
    async with open_embedded_cluster(config) as endpoints:
        CONSOLE.print(
            f"Embedded cluster up: storage at {endpoints.storage}, scheduler at "
            f"{endpoints.scheduler}, data in {data_dir}"
        )
        async with open_client(endpoints.storage) as client:
            group = await client.add_resource_group("quickstart")
            with Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                TimeElapsedColumn(),
                console=CONSOLE,
            ) as progress:
                bar = progress.add_task("submitting the word-count job", total=1)

                def show(observed: JobProgress) -> None:
                    progress.update(
                        bar,
                        description=f"job {observed.job_id}: {observed.state.value}, "
                        f"{observed.num_tasks} tasks",
                        completed=1 if observed.state.is_terminal else 0,
                    )

                (counts,) = await client.run(job, group, on_progress=show)
    table = Table("word", "count", title="Word counts")
    for word, n in sorted(counts.items(), key=lambda item: (-item[1], item[0])):
        table.add_row(word.decode(), str(n))
    CONSOLE.print(table)


if __name__ == "__main__":
    # The services' log lines would drown the progress display; errors still show.
    configure_logging(level="ERROR", human=True)
    logging.getLogger("grpclib").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory(prefix="spider-quickstart-") as directory:
        trio.run(main, Path(directory))
