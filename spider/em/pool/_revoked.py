"""``RevokedBeforeStart``: instances storage revoked before a slot started them.

Storage may revoke an instance while the EM is still receiving its registration; the slot that
then gets it does not start it. The ids are kept in arrival order and the oldest are dropped past
a bound: an id whose task never reaches a slot (a registration that failed) must not pile up.
"""

from __future__ import annotations

import collections
from typing import Final

import attrs

from spider.core.ids import TaskInstanceId

MAX_REMEMBERED: Final = 1024


@attrs.define(eq=False)
class RevokedBeforeStart:
    """A bounded set of revoked instance ids that no slot was running."""

    _ids: collections.OrderedDict[TaskInstanceId, None] = attrs.field(
        factory=collections.OrderedDict
    )

    def add(self, instance_id: TaskInstanceId) -> None:
        self._ids[instance_id] = None
        if len(self._ids) > MAX_REMEMBERED:
            self._ids.popitem(last=False)

    def take(self, instance_id: TaskInstanceId) -> bool:
        """Whether ``instance_id`` was revoked (and forget it)."""
        if instance_id not in self._ids:
            return False
        del self._ids[instance_id]
        return True
