"""The execution manager: pulls assignments, runs tasks in executor subprocesses, reports."""
