"""What a waiting client knows about a job between polls."""

from __future__ import annotations

from collections.abc import Callable

import attrs

from spider.core.job_state import JobState


@attrs.frozen
class JobProgress:
    """One observation of a job while waiting for it.

    Storage's protocol exposes only the job's state (no per-task progress), so this is the state
    plus what the client itself knows: when it started waiting, how many answers it got (polls,
    or long polls that end when the job does or after ``ClientConfig.progress_poll``), when the
    state last changed and, for a job submitted through this client, its number of tasks.
    """

    job_id: int
    state: JobState
    previous_state: JobState | None
    """The state seen at the answer before, ``None`` at the first."""
    elapsed: float
    """Seconds since waiting began."""
    polls: int
    """Answers from storage so far, this one included."""
    num_tasks: int | None
    """Tasks in the job's graph, if this client built it; ``None`` otherwise."""

    @property
    def changed(self) -> bool:
        """The state differs from the previous poll's (always true at the first poll)."""
        return self.state is not self.previous_state


ProgressCallback = Callable[[JobProgress], object]
"""Called after every answer from storage, from the waiting task; keep it quick."""
