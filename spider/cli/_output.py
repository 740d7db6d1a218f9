"""``Output``: where a command's results and failures go, as rich text or one JSON document."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from typing import Any

from rich.console import Console, RenderableType
from rich.markup import escape


class Output:
    """Where results go: rich text for people, one JSON document for scripts."""

    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json
        self.out = Console(highlight=False, soft_wrap=True)
        self.err = Console(stderr=True, highlight=False, soft_wrap=True)

    def result(self, document: Mapping[str, Any], text: RenderableType) -> None:
        if self.as_json:
            print(json.dumps(document, ensure_ascii=False))
        else:
            self.out.print(text)

    def failure(self, error: BaseException, kind: str) -> None:
        if self.as_json:
            print(json.dumps({"error": str(error), "kind": kind}), file=sys.stderr)
        else:
            self.err.print(f"[red]error:[/red] {escape(str(error))}")
