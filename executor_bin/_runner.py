"""Running one ``Execute`` request: find (or load) the package, run the task, time it."""

from __future__ import annotations

import time
import traceback
from pathlib import Path

import attrs

from spider.executor.protocol import (
    Execute,
    Failure,
    Success,
    TaskOutcome,
    validate_package_dir,
)
from spider.tdl import InvalidPackageName, PackageNotFound, TdlError, TdlPackage, load_package

INTERNAL_ERROR_KIND = "internal"
"""``Failure.kind`` for an exception that the TDL layer did not translate (an executor bug)."""

# A failure must fit a frame with room to spare; the start of a message and the end of a
# traceback (where the error is) are what a reader needs.
_MAX_TEXT_CHARS = 32 * 1024
_MIN_TEXT_CHARS = 256


@attrs.define(eq=False)
class PackageCache:
    """Loaded TDL packages by name, and the load failures that must stick.

    A package whose import or ``@on_load`` hook failed stays failed: every later task of it
    fails with the same error instead of re-running a half-initialised import. A missing
    package or an invalid name is not cached, so a package installed later is picked up.
    """

    package_dir: tuple[Path, ...] = attrs.field(converter=validate_package_dir)
    """The package directories, searched in order (``load_package``)."""
    _entries: dict[str, TdlPackage | TdlError] = attrs.field(factory=dict, init=False)

    def get(self, name: str) -> TdlPackage:
        """The loaded package ``name``; raises the ``TdlError`` that stops it from loading."""
        entry = self._entries.get(name)
        if entry is None:
            try:
                entry = load_package(self.package_dir, name)
            except (PackageNotFound, InvalidPackageName):
                raise
            except TdlError as exc:
                entry = exc
            self._entries[name] = entry
        if isinstance(entry, TdlError):
            # Re-raised many times: drop the previous traceback so it does not grow.
            raise entry.with_traceback(None)
        return entry


@attrs.define(eq=False)
class TaskRunner:
    """Turns ``Execute`` requests into outcomes; never raises for anything a task does."""

    packages: PackageCache
    max_frame_bytes: int
    _max_text_chars: int = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self._max_text_chars = max(_MIN_TEXT_CHARS, min(_MAX_TEXT_CHARS, self.max_frame_bytes // 8))

    def run(self, request: Execute) -> TaskOutcome:
        """Load the package if needed and run the task; elapsed time covers both."""
        started = time.perf_counter_ns()
        try:
            package = self.packages.get(request.package)
            outputs = package.execute(request.task_func, request.raw_ctx, request.raw_inputs)
        except TdlError as exc:
            return Failure(
                kind=exc.kind,
                message=self._head(str(exc)),
                exc_type=getattr(exc, "exc_type", None),
                traceback=self._tail(getattr(exc, "traceback", None)),
                elapsed_us=_elapsed_us(started),
            )
        except Exception as exc:
            # A bug below the TDL's own error handling: report it and keep serving.
            return Failure(
                kind=INTERNAL_ERROR_KIND,
                message=self._head(
                    f"internal executor error running {request.package}::{request.task_func}: "
                    f"{type(exc).__qualname__}: {exc}"
                ),
                exc_type=type(exc).__qualname__,
                traceback=self._tail("".join(traceback.format_exception(exc))),
                elapsed_us=_elapsed_us(started),
            )
        return Success(outputs=outputs, elapsed_us=_elapsed_us(started))

    def _head(self, text: str) -> str:
        if len(text) <= self._max_text_chars:
            return text
        return text[: self._max_text_chars] + f"... [{len(text) - self._max_text_chars} more chars]"

    def _tail(self, text: str | None) -> str | None:
        if text is None or len(text) <= self._max_text_chars:
            return text
        return f"[{len(text) - self._max_text_chars} chars cut] ..." + text[-self._max_text_chars :]


def _elapsed_us(started_ns: int) -> int:
    return (time.perf_counter_ns() - started_ns) // 1000
