"""``ConsumedAssignment``: the acknowledgement an EM sends and the scheduler checks.

One class for both ends of Spider's ``TaskAssignmentRecord``: the EM's ledger holds the ones it
consumed until a ``NextTask``, ``NextTasks`` or ``Shutdown`` call carries them, and the scheduler
drops the matching ``IssuedAssignment`` from what it holds outstanding (docs/architecture.md,
"A task's path, and what it is called at each step").
"""

from __future__ import annotations

import attrs

from spider.core.ids import AssignmentId, SchedulerId


@attrs.frozen
class ConsumedAssignment:
    """Proof that an EM consumed assignment ``id``, issued by scheduler ``issued_by``."""

    id: AssignmentId
    issued_by: SchedulerId
