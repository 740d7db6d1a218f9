"""Splitting an executor's stderr bytes into lines, with a cap on the length of a line.

Pure and incremental: whatever way the stream is chunked, the same lines come out. A line over
the cap keeps its first ``max_line_bytes`` bytes (cut back to a UTF-8 character boundary) and
records how many bytes were cut; the rest is discarded as it arrives, so memory stays bounded by
the cap however long the line is.
"""

from __future__ import annotations

import attrs

_NEWLINE = b"\n"
_CARRIAGE_RETURN = 0x0D


@attrs.frozen
class StderrLine:
    """One line without its ``\\n`` (nor one ``\\r`` before it)."""

    data: bytes
    cut_bytes: int = 0
    """Bytes cut off the end because the line was over the cap; 0 for a whole line."""


@attrs.define(eq=False)
class LineSplitter:
    """Turns chunks of bytes into ``StderrLine`` s; ``finish`` flushes a last unterminated line."""

    max_line_bytes: int
    _partial: bytearray = attrs.field(factory=bytearray, init=False)
    _cut: int = attrs.field(default=0, init=False)
    _last_byte: int = attrs.field(default=-1, init=False)

    def feed(self, chunk: bytes) -> list[StderrLine]:
        """The lines that ``chunk`` completes, in order."""
        lines = []
        start = 0
        while (end := chunk.find(_NEWLINE, start)) >= 0:
            self._append(chunk, start, end)
            lines.append(self._take())
            start = end + 1
        self._append(chunk, start, len(chunk))
        return lines

    def finish(self) -> list[StderrLine]:
        """The last line if the stream ended without a newline (else nothing)."""
        if not self._partial and not self._cut:
            return []
        return [self._take()]

    def _append(self, chunk: bytes, start: int, end: int) -> None:
        if end == start:
            return
        room = self.max_line_bytes - len(self._partial)
        kept = min(room, end - start)
        if kept:
            self._partial += chunk[start : start + kept]
        self._cut += end - start - kept
        self._last_byte = chunk[end - 1]

    def _take(self) -> StderrLine:
        data = bytes(self._partial)
        cut = self._cut
        if self._last_byte == _CARRIAGE_RETURN:
            # The line's last byte is a '\r': it is either still in ``data`` or was cut.
            if cut:
                cut -= 1
            else:
                data = data[:-1]
        if cut:
            boundary = _utf8_boundary(data)
            cut += len(data) - boundary
            data = data[:boundary]
        self._partial.clear()
        self._cut = 0
        self._last_byte = -1
        return StderrLine(data, cut)


def _utf8_boundary(data: bytes) -> int:
    """The length of ``data`` without a trailing incomplete UTF-8 sequence."""
    index = len(data) - 1
    # Skip at most three continuation bytes back to the lead byte of the last sequence.
    while index >= 0 and len(data) - index < 4 and data[index] & 0xC0 == 0x80:
        index -= 1
    if index < 0:
        return len(data)
    lead = data[index]
    if lead < 0xC0 or lead >= 0xF8:
        return len(data)  # ASCII, a stray continuation byte, or not UTF-8 at all: keep it
    needed = 4 if lead >= 0xF0 else 3 if lead >= 0xE0 else 2
    return index if len(data) - index < needed else len(data)
