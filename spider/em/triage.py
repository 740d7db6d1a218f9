"""Session triage: what an assignment's storage session says about the work.

``SessionTracker`` holds the newest session the liveness loop has seen. An assignment from an
older session was made before storage restarted: storage would reject it, so it is dropped (and
acknowledged) without calling storage. One from a newer session means storage restarted and the
tracker has not caught up: the liveness loop is asked for an immediate heartbeat, and the
assignment goes on to registration in its own session.
"""

from __future__ import annotations

import enum

from spider.core import SessionTracker
from spider.core.ids import SessionId


class Triage(enum.Enum):
    """The verdict on an assignment's session."""

    STALE = "stale"
    """Older than the tracker: drop and acknowledge, do not call storage."""
    CURRENT = "current"
    """The tracker's session: register."""
    NEWER = "newer"
    """Newer than the tracker: refresh liveness, then register."""


def triage(tracker: SessionTracker, session: SessionId) -> Triage:
    """Compare ``session`` with the tracker's current session."""
    if tracker.is_stale(session):
        return Triage.STALE
    if tracker.is_newer(session):
        return Triage.NEWER
    return Triage.CURRENT
