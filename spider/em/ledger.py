"""The consumed-assignment ledger: acknowledgements the scheduler has not received yet.

The EM pushes a record once it has taken responsibility for an assignment (storage accepted the
registration, or the EM dropped the assignment as stale or rejected). A record leaves the ledger
only while a ``NextTask`` or ``NextTasks`` call carries it, and returns to the front if that call
fails or is cancelled before the scheduler answered; whatever is left at exit goes out in
``Shutdown``. Acknowledgements are idempotent on the scheduler, so sending one twice is harmless,
while losing one makes the scheduler re-dispatch work that already ran (upstream's bug,
docs/upstream.md#em-flaws-fixed, items 1-2).
"""

from __future__ import annotations

import collections
from collections.abc import Iterator
from contextlib import contextmanager

import attrs

from spider.core.assignment import ConsumedAssignment


@attrs.define(eq=False)
class AssignmentLedger:
    """A FIFO of records waiting to be acknowledged to the scheduler."""

    _records: collections.deque[ConsumedAssignment] = attrs.field(factory=collections.deque)

    def __len__(self) -> int:
        return len(self._records)

    def push(self, record: ConsumedAssignment) -> None:
        """The EM took responsibility for ``record``'s assignment: acknowledge it later."""
        self._records.append(record)

    @contextmanager
    def lend_one(self) -> Iterator[ConsumedAssignment | None]:
        """Take the oldest record for one ``NextTask`` RPC.

        If the block raises (the RPC failed, or the caller was cancelled before the scheduler
        answered), the record goes back to the front so the next call or ``Shutdown`` sends it.
        """
        record = self._records.popleft() if self._records else None
        try:
            yield record
        except BaseException:
            if record is not None:
                self._records.appendleft(record)
            raise

    @contextmanager
    def lend_all(self) -> Iterator[list[ConsumedAssignment]]:
        """Take every record for one RPC (``NextTasks``, ``Shutdown``), restoring them all at
        the front if it fails or is cancelled before the scheduler answered."""
        records = list(self._records)
        self._records.clear()
        try:
            yield records
        except BaseException:
            self._records.extendleft(reversed(records))
            raise

    def pending(self) -> list[ConsumedAssignment]:
        """A snapshot of the records not yet acknowledged, oldest first."""
        return list(self._records)
