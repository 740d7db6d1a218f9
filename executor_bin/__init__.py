"""The Spider-py task executor: a subprocess of the EM that runs one task at a time.

It reads length-prefixed msgpack requests on stdin and answers on stdout
(``docs/executor-protocol.md``); ``spider.executor`` is the parent's side.
"""

from __future__ import annotations

from executor_bin._main import main

__all__ = ["main"]
