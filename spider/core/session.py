"""``SessionTracker``: the newest storage session this process has seen; it only moves forward."""

from __future__ import annotations

import attrs

from spider.core.errors import SessionRegressionError
from spider.core.ids import SessionId


@attrs.define(eq=False)
class SessionTracker:
    """Holds the current storage session id.

    Storage starts a new session on every start, so an id from an older session marks stale
    work. Only the liveness loop advances the tracker; everyone else reads and compares.
    """

    _current: SessionId

    @property
    def current(self) -> SessionId:
        return self._current

    def advance(self, session: SessionId) -> bool:
        """Move to ``session`` if it is newer; return whether it moved.

        An equal session is a no-op. An older one means storage went back in time (a restored
        database, a second storage on the same DB): a fatal invariant violation.
        """
        if session > self._current:
            self._current = session
            return True
        if session < self._current:
            raise SessionRegressionError(
                f"storage session went backwards from {self._current} to {session}; "
                "is another storage process using the same database?"
            )
        return False

    def is_stale(self, session: SessionId) -> bool:
        """True if ``session`` is older than the current one."""
        return session < self._current

    def is_newer(self, session: SessionId) -> bool:
        """True if ``session`` is newer than the current one (we must heartbeat to catch up)."""
        return session > self._current
