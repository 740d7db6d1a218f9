"""Bounds on what a client may send, and how error messages quote what they reject.

A rejected value is quoted by a short prefix only: an error message travels back in a gRPC
trailer, and HPACK-encoding a trailer of a million characters stalls the server's one network
thread for over a minute (docs/limits.md). Every string field where input enters has a length
limit, checked before anything else is done with the value.
"""

from __future__ import annotations

from typing import Final

QUOTE_CHARS: Final = 64
"""The most characters of a rejected value an error message quotes."""

MAX_NAME_CHARS: Final = 1024
"""A TDL package, task function or struct type name in a task graph."""

MAX_IP_ADDRESS_CHARS: Final = 64
"""An EM's ``ip_address`` (the longest IPv6 text with a zone id fits)."""

MAX_HOST_CHARS: Final = 253
"""A host name (DNS allows 253 characters)."""

SUMMARY_CHARS: Final = 300
"""The most of an error a listing carries (its first line, cut): the full text is one call
away."""

MAX_STATUS_MESSAGE_CHARS: Final = 1024
"""The longest status message a server puts in a trailer; longer ones are cut (a last defence:
every message should be short already)."""


def quoted(value: str | bytes, limit: int = QUOTE_CHARS) -> str:
    """``repr(value)`` if it is at most ``limit`` long, else the repr of its first ``limit``
    characters (or bytes) and how long it was."""
    if len(value) <= limit:
        return repr(value)
    unit = "characters" if isinstance(value, str) else "bytes"
    return f"{value[:limit]!r}... ({len(value)} {unit})"


def truncated(text: str, limit: int, marker: str = "... [truncated]") -> str:
    """``text``, or its first characters and ``marker`` so that the whole is ``limit`` long."""
    if len(text) <= limit:
        return text
    return text[: max(limit - len(marker), 0)] + marker


def summary_line(text: str | None, limit: int = SUMMARY_CHARS) -> str:
    """The first line of ``text``, at most ``limit`` characters; empty for none."""
    if not text:
        return ""
    return text.partition("\n")[0][:limit]


def last_chars(text: str, limit: int, what: str) -> str:
    """``text``, or its last ``limit`` characters after a line saying how many of the ``what``
    were left out (for a traceback, whose end says what happened)."""
    if len(text) <= limit:
        return text
    return f"[{len(text) - limit} characters of the {what} left out]\n" + text[-limit:]


def check_length(value: str | bytes, limit: int, field: str) -> str | None:
    """``None`` if ``value`` is at most ``limit`` long, else the message to reject it with."""
    if len(value) <= limit:
        return None
    unit = "characters" if isinstance(value, str) else "bytes"
    return f"{field} is {len(value)} {unit}, over the limit of {limit}: {quoted(value)}"
