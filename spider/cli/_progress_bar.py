"""The live progress display of ``spider watch`` and ``spider submit --wait``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from spider.client import JobProgress, ProgressCallback


@contextmanager
def progress_bar(console: Console, job_id: int) -> Iterator[ProgressCallback]:
    """A callback for ``SpiderClient.wait`` that draws the job's state on ``console``.

    Storage reports only the job's state, so the bar pulses until the job is over and then
    fills; the text shows the state, the task count when known, and the polls made.
    """
    with Progress(
        SpinnerColumn(),
        TextColumn("[bold]job {task.fields[job_id]}[/bold] {task.description}"),
        BarColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as progress:
        bar = progress.add_task("waiting", total=None, job_id=job_id)

        def update(observed: JobProgress) -> None:
            tasks = f", {observed.num_tasks} tasks" if observed.num_tasks is not None else ""
            text = f"{observed.state.value}{tasks} ({observed.polls} polls)"
            if observed.state.is_terminal:
                progress.update(bar, description=text, total=1, completed=1)
            else:
                progress.update(bar, description=text)

        yield update
