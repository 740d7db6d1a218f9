"""``Dataflow``: the live task graph of a job that has not finished its regular tasks.

It holds one ``TaskControlBlock`` per task, the output payloads of every succeeded task (the
dataflow slots: a task's inputs are read from its sources' outputs, or from the job inputs for
an input task), and per task the number of parents that have not succeeded yet. A task whose
count reaches zero becomes ready. The job keeps its ``Dataflow`` while Ready or Running and
drops it when the regular tasks are over, which releases the graph and every intermediate value.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import attrs

from spider.core.ids import JobId, TaskInstanceId
from spider.core.task_graph import TaskGraph
from spider.core.task_id import TaskId
from spider.core.task_state import TaskState
from spider.core.wire import encode_frame
from spider.storage.errors import BadRequest
from spider.storage.task_control import TaskControlBlock


@attrs.define(eq=False)
class JobInputs:
    """A job's input payloads. While the job waits to be started, only the bytes the client
    sent are kept: zstd, so a job whose inputs decompress to 64 MiB may hold a few kilobytes
    here, not 64 MiB for as long as nobody starts it. ``start`` sets the decoded payloads."""

    compressed: bytes
    payloads: tuple[bytes, ...] | None = None

    @classmethod
    def decoded(cls, payloads: Sequence[bytes]) -> JobInputs:
        """Inputs already decoded (a job started as it is registered, or a recovered one)."""
        return cls(b"", tuple(payloads))

    def start(self, payloads: Sequence[bytes]) -> None:
        """The decoded payloads, when the job starts; the compressed bytes are dropped."""
        self.payloads = tuple(payloads)
        self.compressed = b""


@attrs.define(eq=False)
class Dataflow:
    """Task states, dataflow slots and unfinished-parent counters of one job's graph."""

    graph: TaskGraph
    job_inputs: JobInputs
    tasks: list[TaskControlBlock]
    outputs: list[list[bytes] | None]
    waiting_on: list[int]
    """Per task, how many of its parents have not succeeded."""
    unfinished: int
    """How many tasks have not succeeded."""
    output_bytes: int
    """The bytes of every output payload held in ``outputs``."""
    _first_input: list[int]
    """Per input task, the position of its first input among the job inputs."""

    @classmethod
    def build(cls, job_id: JobId, graph: TaskGraph, job_inputs: JobInputs) -> Dataflow:
        """A fresh dataflow: input tasks Ready, every other task Pending."""
        size = len(graph)
        tasks = []
        waiting_on = []
        for index in range(size):
            descriptor = graph.task(index)
            parents = len(graph.parents(index))
            tasks.append(
                TaskControlBlock.new(
                    job_id,
                    TaskId.index(index),
                    descriptor.tdl_context,
                    descriptor.execution_policy,
                    ready=parents == 0,
                )
            )
            waiting_on.append(parents)
        first_input = [0] * size
        for position, source in reversed(list(enumerate(graph.graph_inputs()))):
            first_input[source.task_idx] = position
        return cls(graph, job_inputs, tasks, [None] * size, waiting_on, size, 0, first_input)

    def restore(self, finished: Mapping[int, list[bytes]]) -> None:
        """Mark the tasks of ``finished`` (index -> output payloads) Succeeded, as recovery found.

        The payload counts must already be checked. Counters and Ready/Pending states are then
        recomputed from the succeeded set.
        """
        for index, payloads in finished.items():
            self.tasks[index].finish(TaskState.SUCCEEDED)
            self.outputs[index] = payloads
            self.output_bytes += sum(map(len, payloads))
        self.unfinished = 0
        for index, tcb in enumerate(self.tasks):
            if tcb.state is TaskState.SUCCEEDED:
                continue
            self.unfinished += 1
            waiting = sum(
                1
                for parent in self.graph.parents(index)
                if self.tasks[parent].state is not TaskState.SUCCEEDED
            )
            self.waiting_on[index] = waiting
            tcb.state = TaskState.READY if waiting == 0 else TaskState.PENDING

    def task(self, index: int) -> TaskControlBlock:
        """The control block of task ``index``; ``BadRequest`` if the graph has no such task."""
        if not 0 <= index < len(self.tasks):
            raise BadRequest(
                f"task index {index} does not exist: the job has {len(self.tasks)} tasks"
            )
        return self.tasks[index]

    def check_outputs(self, index: int, payloads: Sequence[bytes]) -> None:
        """Raise ``BadRequest`` unless ``payloads`` has one payload per declared output."""
        declared = len(self.graph.task(index).outputs)
        if len(payloads) != declared:
            raise BadRequest(
                f"task {TaskId.index(index)} declares {declared} output(s) but the report "
                f"carries {len(payloads)}; nothing was changed"
            )

    def input_frame(self, index: int) -> bytes:
        """The wire frame of task ``index``'s input payloads, in input order."""
        descriptor = self.graph.task(index)
        sources = descriptor.input_sources
        if sources is None:
            first = self._first_input[index]
            job_inputs = self.job_inputs.payloads
            # Input tasks are ready only once the job has started, which decoded the inputs.
            assert job_inputs is not None, f"task {index} is ready before its job started"
            return encode_frame(job_inputs[first : first + len(descriptor.inputs)])
        outputs = self.outputs
        payloads = []
        for source in sources:
            produced = outputs[source.task_idx]
            if produced is None:  # pragma: no cover - a Ready task's parents all succeeded
                raise AssertionError(
                    f"task {index} is ready but task {source.task_idx} has no outputs"
                )
            payloads.append(produced[source.position])
        return encode_frame(payloads)

    def ready_tasks(self) -> list[TaskId]:
        """Every task in state Ready and not waiting out a retry delay, in index order."""
        return [tcb.task_id for tcb in self.tasks if tcb.offerable]

    def succeed(
        self, index: int, payloads: list[bytes], now: float | None
    ) -> tuple[list[TaskId], set[TaskInstanceId]]:
        """Task ``index`` succeeded with ``payloads`` at ``now``: fill its slots, release its
        children.

        Returns the children that became ready and the instances of the task made stale.
        """
        dropped = self.tasks[index].finish(TaskState.SUCCEEDED, now=now)
        self.outputs[index] = payloads
        self.output_bytes += sum(map(len, payloads))
        self.unfinished -= 1
        ready = []
        for child in self.graph.children(index):
            tcb = self.tasks[child]
            if tcb.state is not TaskState.PENDING:
                continue
            self.waiting_on[child] -= 1
            if self.waiting_on[child] == 0:
                tcb.state = TaskState.READY
                ready.append(tcb.task_id)
        return ready, dropped

    def job_output_payloads(self, last: int, payloads: list[bytes]) -> list[bytes]:
        """The job outputs, in graph-output order, if task ``last`` finishes with ``payloads``."""
        result = []
        for source in self.graph.graph_outputs():
            produced = payloads if source.task_idx == last else self.outputs[source.task_idx]
            if produced is None:  # pragma: no cover - only called when every other task is done
                raise AssertionError(f"output task {source.task_idx} has not succeeded")
            result.append(produced[source.position])
        return result

    def cancel_all(self) -> set[TaskInstanceId]:
        """Cancel every task that has not ended; return the instances made stale."""
        dropped: set[TaskInstanceId] = set()
        for tcb in self.tasks:
            dropped |= tcb.cancel()
        return dropped
