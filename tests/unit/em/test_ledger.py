from __future__ import annotations

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from spider.core.assignment import ConsumedAssignment
from spider.core.ids import AssignmentId, SchedulerId
from spider.em.ledger import AssignmentLedger


class RpcFailedError(Exception):
    pass


class Interrupted(BaseException):
    """Stands in for trio.Cancelled: a BaseException raised into the RPC."""


def record(n: int, scheduler: int = 1) -> ConsumedAssignment:
    return ConsumedAssignment(AssignmentId(n), SchedulerId(scheduler))


def test_records_leave_in_fifo_order_one_per_call() -> None:
    ledger = AssignmentLedger()
    ledger.push(record(1))
    ledger.push(record(2))
    with ledger.lend_one() as first:
        assert first == record(1)
    with ledger.lend_one() as second:
        assert second == record(2)
    with ledger.lend_one() as none:
        assert none is None
    assert len(ledger) == 0


@pytest.mark.parametrize("error", [RpcFailedError(), Interrupted()])
def test_a_failed_or_cancelled_call_puts_the_record_back_in_front(error: BaseException) -> None:
    ledger = AssignmentLedger()
    ledger.push(record(1))
    ledger.push(record(2))
    with pytest.raises(type(error)), ledger.lend_one():
        raise error
    assert ledger.pending() == [record(1), record(2)]


def test_a_failed_shutdown_restores_every_record_in_order() -> None:
    ledger = AssignmentLedger()
    for n in range(3):
        ledger.push(record(n))
    sent: list[ConsumedAssignment] = []

    def failing_shutdown() -> None:
        with ledger.lend_all() as records:
            sent.extend(records)
            ledger.push(record(9))  # pushed while Shutdown was in flight
            raise RpcFailedError

    with pytest.raises(RpcFailedError):
        failing_shutdown()
    assert sent == [record(0), record(1), record(2)]
    assert ledger.pending() == [record(0), record(1), record(2), record(9)]


class LedgerMachine(RuleBasedStateMachine):
    """Random interleavings of the EM taking assignments and acknowledging them.

    ``responsible``: assignments the EM took responsibility for (pushed).
    ``acknowledged``: what the scheduler has received, possibly more than once.
    """

    def __init__(self) -> None:
        super().__init__()
        self.ledger = AssignmentLedger()
        self.next_id = 0
        self.responsible: list[ConsumedAssignment] = []
        self.acknowledged: set[ConsumedAssignment] = set()
        self.unregistered: set[ConsumedAssignment] = set()

    def _dispatch(self) -> ConsumedAssignment:
        self.next_id += 1
        return record(self.next_id, scheduler=self.next_id % 3)

    @rule()
    def take_responsibility(self) -> None:
        taken = self._dispatch()
        self.ledger.push(taken)
        self.responsible.append(taken)

    @rule()
    def cancelled_during_register(self) -> None:
        # The EM never took responsibility: the scheduler must not be told it did.
        self.unregistered.add(self._dispatch())

    @rule(outcome=st.sampled_from(["answered", "lost_request", "lost_response", "cancelled"]))
    def next_task(self, outcome: str) -> None:
        try:
            with self.ledger.lend_one() as carried:
                if carried is not None and outcome in ("answered", "lost_response"):
                    self.acknowledged.add(carried)
                if outcome in ("lost_request", "lost_response"):
                    raise RpcFailedError
                if outcome == "cancelled":
                    raise Interrupted
        except (RpcFailedError, Interrupted):
            pass

    @rule(delivered=st.booleans())
    def shutdown(self, delivered: bool) -> None:
        try:
            with self.ledger.lend_all() as records:
                if not delivered:
                    raise RpcFailedError
                self.acknowledged.update(records)
        except RpcFailedError:
            pass

    @invariant()
    def nothing_is_lost(self) -> None:
        pending = set(self.ledger.pending())
        assert all(r in pending or r in self.acknowledged for r in self.responsible)

    @invariant()
    def nothing_is_acknowledged_before_responsibility(self) -> None:
        assert self.acknowledged <= set(self.responsible)
        assert not self.unregistered & (self.acknowledged | set(self.ledger.pending()))

    @invariant()
    def order_is_first_in_first_out(self) -> None:
        pending = self.ledger.pending()
        positions = [self.responsible.index(r) for r in pending]
        assert positions == sorted(positions)
        assert len(pending) == len(set(pending))


TestLedgerStateMachine = LedgerMachine.TestCase
