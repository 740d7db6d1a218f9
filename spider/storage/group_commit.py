"""``GroupCommit``: hot-path writes that arrive together share one transaction and one fsync.

Leader/follower, with no background task: a caller whose write is queued while no batch is
being written becomes the leader. It takes everything queued (up to ``MAX_BATCH`` writes), runs
it through ``StorageDatabase.write_batch`` (one transaction, savepoint per write), and once that
transaction is durable hands every write its own outcome and wakes the waiters. Writes queued
meanwhile form the next batch, led by the first of their callers to wake. So while one fsync is
in progress the next batch fills up, and under load each commit carries many writes; alone, a
write costs what it cost before (one transaction).

Guarantees:

* No caller gets its result before its write's transaction committed; a failed write (its own
  error, or an unavailable database) gets an error and changed nothing.
* One write's failure never fails another (``write_batch`` rolls it back to its savepoint, or
  runs the writes again alone).
* Cancellation keeps the contract of ``trio.to_thread.run_sync`` that callers rely on (apply a
  write's effect synchronously right after it returns): a write still queued is withdrawn and
  the caller sees ``Cancelled`` (nothing written); a write already in a batch is waited for,
  shielded, and its result returned, so the caller's next checkpoint raises ``Cancelled``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

import attrs
import outcome
import trio

from spider.storage import metrics
from spider.storage.db.writes import BatchOutcome, Write

MAX_BATCH = 1024
"""Most writes in one transaction: bounds how long one commit holds the write lock."""


@attrs.define(eq=False)
class CommitCounters:
    """Durable transactions and the writes they carried, since the process started.

    ``writes / transactions`` is the batching factor; for the benchmark, ``transactions`` per
    task is the fsyncs per task (SQLite syncs once per commit with ``synchronous=FULL``).
    """

    transactions: int = 0
    writes: int = 0

    def add(self, transactions: int, writes: int) -> None:
        """Count ``transactions`` commits that made ``writes`` writes durable."""
        self.transactions += transactions
        self.writes += writes


@attrs.define(eq=False)
class _PendingWrite:
    """A write waiting for the batch that commits it, then its result."""

    write: Write
    result: outcome.Outcome[object] | None = None


@attrs.define(eq=False)
class GroupCommit:
    """Batches concurrent writes into shared transactions; see the module docstring."""

    write_batch: Callable[[Sequence[Write]], Awaitable[BatchOutcome]]
    """Runs one batch (``StorageDatabase.write_batch``, off the Trio loop)."""
    counters: CommitCounters = attrs.field(factory=CommitCounters)
    _queued: list[_PendingWrite] = attrs.field(factory=list)
    _writing: bool = False
    _settled: trio.lowlevel.ParkingLot = attrs.field(factory=trio.lowlevel.ParkingLot)

    @property
    def queued(self) -> int:
        """Writes waiting for the next batch."""
        return len(self._queued)

    async def commit(self, write: Write) -> object:
        """Make ``write`` durable (in some batch); its result, or its own error raised."""
        pending = _PendingWrite(write)
        self._queued.append(pending)
        try:
            while pending.result is None:
                if self._writing:
                    await self._settled.park()
                else:
                    await self._lead()
        except trio.Cancelled:
            if pending in self._queued:
                self._queued.remove(pending)
                raise
            # In a batch being written: it may commit, and the caller must see the result
            # to apply it. The cancellation stays pending for the caller's next checkpoint.
            with trio.CancelScope(shield=True):
                while pending.result is None:
                    await self._settled.park()
        settled: outcome.Outcome[object] | None = pending.result
        assert settled is not None
        return settled.unwrap()

    async def _lead(self) -> None:
        self._writing = True
        batch = self._queued[:MAX_BATCH]
        del self._queued[:MAX_BATCH]
        try:
            # Shielded like a worker thread: once taken, a batch always runs to its outcome.
            with trio.CancelScope(shield=True), metrics.COMMIT_SECONDS.time():
                result = await self.write_batch([pending.write for pending in batch])
            if len(result.outcomes) != len(batch):
                raise AssertionError(
                    f"write_batch returned {len(result.outcomes)} outcomes for {len(batch)} writes"
                )
        except Exception as exc:  # a backend bug: every write of the batch gets the error
            for pending in batch:
                pending.result = outcome.Error(exc)
        except BaseException:
            # KeyboardInterrupt and the like end the leader; the writes it took must still be
            # settled, or their callers would wait (shielded) for an outcome that never comes.
            for pending in batch:
                pending.result = outcome.Error(
                    RuntimeError("the batch writing this was interrupted; its outcome is unknown")
                )
            raise
        else:
            self.counters.add(result.transactions, result.written)
            metrics.COMMITTED_WRITES.inc(result.written)
            for pending, settled in zip(batch, result.outcomes, strict=True):
                pending.result = settled
        finally:
            self._writing = False
            self._settled.unpark_all()
