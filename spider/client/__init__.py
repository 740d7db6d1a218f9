"""The Spider client: build jobs from ``@task`` functions, submit them, watch them, read them.

Async (Trio)::

    async with open_client("127.0.0.1:50051") as client:
        group = await client.add_resource_group("my-team")
        job = JobBuilder()
        total = job.add(add, 1, 2)
        job.add(double, total)
        outputs = await client.run(job, group)

Blocking: ``SyncClient("127.0.0.1:50051").run(job, group)``. See docs/client.md.
"""

from spider.client._catalog import JobListing, JobPage, TaskListing, TaskPage
from spider.client._client import (
    ClusterDetails,
    ClusterStatus,
    DatabaseInfo,
    ExecutionManagerInfo,
    JobResult,
    QueueLane,
    SchedulerInfo,
    SpiderClient,
    decode_outputs,
    open_client,
)
from spider.client._config import DEFAULT_STORAGE, STORAGE_ENV, ClientConfig, GroupCredential
from spider.client._documents import (
    job_document,
    state_name,
    status_document,
    task_document,
    task_name,
)
from spider.client._job import (
    JobBuilder,
    JobDescription,
    TaskHandle,
    TaskOutput,
    execution_policy,
)
from spider.client._json_job import job_from_json, payload_to_json
from spider.client._progress import JobProgress, ProgressCallback
from spider.client._submitted import JobRef, SubmittedJob
from spider.client._sync import SyncClient
from spider.client._task_spec import TaskSpec
from spider.client.errors import (
    ClientError,
    JobCancelledError,
    JobDefinitionError,
    JobFailedError,
    JobNotFoundError,
    JobStateError,
    NotAvailableError,
    OutputDecodeError,
    RequestRejectedError,
    ResourceGroupError,
    StorageServerError,
    StorageUnavailableError,
    SubmissionUnknownError,
)
from spider.core.job_state import JobState
from spider.core.task_graph import ExecutionPolicy, RetryDelay, TimeoutPolicy
from spider.core.task_state import TaskState

__all__ = [
    "DEFAULT_STORAGE",
    "STORAGE_ENV",
    "ClientConfig",
    "ClientError",
    "ClusterDetails",
    "ClusterStatus",
    "DatabaseInfo",
    "ExecutionManagerInfo",
    "ExecutionPolicy",
    "GroupCredential",
    "JobBuilder",
    "JobCancelledError",
    "JobDefinitionError",
    "JobDescription",
    "JobFailedError",
    "JobListing",
    "JobNotFoundError",
    "JobPage",
    "JobProgress",
    "JobRef",
    "JobResult",
    "JobState",
    "JobStateError",
    "NotAvailableError",
    "OutputDecodeError",
    "ProgressCallback",
    "QueueLane",
    "RequestRejectedError",
    "ResourceGroupError",
    "RetryDelay",
    "SchedulerInfo",
    "SpiderClient",
    "StorageServerError",
    "StorageUnavailableError",
    "SubmissionUnknownError",
    "SubmittedJob",
    "SyncClient",
    "TaskHandle",
    "TaskListing",
    "TaskOutput",
    "TaskPage",
    "TaskSpec",
    "TaskState",
    "TimeoutPolicy",
    "decode_outputs",
    "execution_policy",
    "job_document",
    "job_from_json",
    "open_client",
    "payload_to_json",
    "state_name",
    "status_document",
    "task_document",
    "task_name",
]
