"""``SessionTracker`` only moves forward; a regression is a fatal invariant violation."""

from __future__ import annotations

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from spider.core.errors import SessionRegressionError
from spider.core.ids import SessionId
from spider.core.session import SessionTracker


def test_advance_moves_forward_only() -> None:
    tracker = SessionTracker(SessionId(5))
    assert tracker.advance(SessionId(7)) is True
    assert tracker.current == 7
    assert tracker.advance(SessionId(7)) is False
    with pytest.raises(SessionRegressionError, match="went backwards from 7 to 6"):
        tracker.advance(SessionId(6))
    assert tracker.current == 7


def test_stale_and_newer_are_strict() -> None:
    tracker = SessionTracker(SessionId(3))
    assert (tracker.is_stale(SessionId(2)), tracker.is_newer(SessionId(2))) == (True, False)
    assert (tracker.is_stale(SessionId(3)), tracker.is_newer(SessionId(3))) == (False, False)
    assert (tracker.is_stale(SessionId(4)), tracker.is_newer(SessionId(4))) == (False, True)


sessions = st.integers(0, 50).map(SessionId)


class SessionTrackerMachine(RuleBasedStateMachine):
    """Drives a tracker with arbitrary sessions and checks it against a plain integer."""

    def __init__(self) -> None:
        super().__init__()
        self.model = 10
        self.tracker = SessionTracker(SessionId(self.model))

    @rule(session=sessions)
    def advance(self, session: SessionId) -> None:
        if session < self.model:
            with pytest.raises(SessionRegressionError):
                self.tracker.advance(session)
            return
        moved = self.tracker.advance(session)
        assert moved == (session > self.model)
        self.model = session

    @rule(session=sessions)
    def compare(self, session: SessionId) -> None:
        assert self.tracker.is_stale(session) == (session < self.model)
        assert self.tracker.is_newer(session) == (session > self.model)
        assert not (self.tracker.is_stale(session) and self.tracker.is_newer(session))

    @invariant()
    def current_matches_the_model(self) -> None:
        assert self.tracker.current == self.model
        assert not self.tracker.is_stale(self.tracker.current)
        assert not self.tracker.is_newer(self.tracker.current)


SessionTrackerMachine.TestCase.settings = settings(max_examples=50, stateful_step_count=30)
test_session_tracker_against_a_model = SessionTrackerMachine.TestCase
