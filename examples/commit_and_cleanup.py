"""A job with a commit task and a cleanup task, and a task that fails before it succeeds.

``flaky::increment`` fails on its first attempt and is retried; once every task succeeded the
commit task publishes the job's outputs (``commit-<job>`` in ``SPIDER_EXAMPLES_STATE_DIR``). Had
the job been cancelled, the cleanup task would have run instead (``cleanup-<job>``).

The executors need the state directory in their environment:

    export SPIDER_EXAMPLES_STATE_DIR=/tmp/spider-examples && mkdir -p $SPIDER_EXAMPLES_STATE_DIR
    # in the EM's configuration: task_executor: {inherited_env: [SPIDER_EXAMPLES_STATE_DIR]}
    spider submit examples/commit_and_cleanup.py --wait
"""

from __future__ import annotations

import _paths  # noqa: F401  (makes spider_examples importable)
from spider_examples import cleanup, commit, increment

from spider.client import JobBuilder, execution_policy


def job() -> JobBuilder:
    """Two increments (one fails once, so it needs a retry), then commit; cleanup on cancel."""
    builder = JobBuilder()
    builder.add(increment, 41, 0)
    builder.add(increment, 99, 1, policy=execution_policy(retries=2))
    builder.commit(commit)
    builder.cleanup(cleanup)
    return builder
