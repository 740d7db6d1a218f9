"""Example tasks for Spider-py: a map-reduce word count, a small neural network, and tasks that
show a job's life cycle (commit, cleanup, retries, cancellation).

The end-to-end tests in ``tests/e2e/cluster`` run these on a real cluster. Two environment
variables, read by the executors, make the runs observable:

- ``SPIDER_EXAMPLES_STATE_DIR``: a directory where tasks append to ``journal.log`` (one line per
  task start and end: job id, task id, wall-clock time), where the commit and cleanup tasks leave
  marker files and where ``flaky::increment`` counts its attempts. Without it the journal is off;
  the tasks that need the directory fail with a message saying so.
- ``SPIDER_EXAMPLES_TASK_DELAY_MS``: every task sleeps this long before it returns, so that a job
  lasts long enough to watch it, or to kill a worker in the middle of it.
"""

from __future__ import annotations

from .lifecycle import cleanup, commit, increment, wait
from .nn import FAN_IN, dense_identity, dense_relu, dense_sigmoid, neuron_task_for_layer
from .wordcount import CHUNKS, count, merge, split

__all__ = [
    "CHUNKS",
    "FAN_IN",
    "cleanup",
    "commit",
    "count",
    "dense_identity",
    "dense_relu",
    "dense_sigmoid",
    "increment",
    "merge",
    "neuron_task_for_layer",
    "split",
    "wait",
]
