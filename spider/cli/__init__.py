"""The ``spider`` command line: ``main(argv) -> exit status``. See docs/cli.md."""

from spider.cli._exit import CliExit
from spider.cli._main import build_parser, main

__all__ = ["CliExit", "build_parser", "main"]
