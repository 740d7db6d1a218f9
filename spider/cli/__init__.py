"""The ``spider`` command line: ``main(argv) -> exit status``. See docs/cli.md."""

from spider.cli._exit import ExitStatus
from spider.cli._main import build_parser, main

__all__ = ["ExitStatus", "build_parser", "main"]
