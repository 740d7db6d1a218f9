"""How an executor process ended, described the way operators read it."""

from __future__ import annotations

import signal

import attrs

EXIT_OK = 0
EXIT_INTERNAL_ERROR = 1
EXIT_CONFIG_ERROR = 2
EXIT_PROTOCOL_ERROR = 3

_EXIT_CODE_MEANINGS = {
    EXIT_INTERNAL_ERROR: "internal error",
    EXIT_CONFIG_ERROR: "invalid configuration",
    EXIT_PROTOCOL_ERROR: "protocol error",
}


@attrs.frozen
class ExecutorExitStatus:
    """A reaped executor's return code (negative when a signal killed it, as in ``subprocess``),
    described for a task's failure message; the executor's exit-code table is ``EXIT_*``."""

    returncode: int

    @property
    def signal_name(self) -> str | None:
        """``"SIGABRT"`` for a process killed by SIGABRT; ``None`` for a normal exit."""
        if self.returncode >= 0:
            return None
        try:
            return signal.Signals(-self.returncode).name
        except ValueError:
            return f"signal {-self.returncode}"

    def describe(self) -> str:
        """``"killed by SIGABRT"`` or ``"exited with code 3 (protocol error)"``."""
        name = self.signal_name
        if name is not None:
            return f"killed by {name}"
        meaning = _EXIT_CODE_MEANINGS.get(self.returncode)
        suffix = f" ({meaning})" if meaning else ""
        return f"exited with code {self.returncode}{suffix}"
