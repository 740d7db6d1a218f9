"""``ReadyTask``: one entry of storage's inbound queue, as storage queues it and the scheduler
polls it (Spider's ``ReadyTask`` message)."""

from __future__ import annotations

import attrs

from spider.core.ids import JobId, ResourceGroupId
from spider.core.task_id import TaskId


@attrs.frozen
class ReadyTask:
    """An entry: task ``task_id`` of job ``job_id`` (owned by ``resource_group_id``) is ready."""

    resource_group_id: ResourceGroupId
    job_id: JobId
    task_id: TaskId
