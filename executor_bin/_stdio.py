"""Keeping task code away from the protocol pipes."""

from __future__ import annotations

import os
import sys


def claim_protocol_fds() -> tuple[int, int]:
    """Move the protocol pipes off fds 0 and 1; returns ``(request_fd, reply_fd)``.

    Tasks (and libraries, and subprocesses they start) print to stdout: fd 1 and ``sys.stdout``
    now lead to stderr, where the parent forwards them as log lines, and fd 0 reads
    ``/dev/null``. The private copies are close-on-exec, so grandchildren never hold them.
    """
    sys.stdout.flush()
    request_fd = os.dup(0)
    reply_fd = os.dup(1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    try:
        os.dup2(devnull, 0)
    finally:
        os.close(devnull)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return request_fd, reply_fd
