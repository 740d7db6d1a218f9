"""Fan-out/fan-in: count the words of a text with one ``split``, four ``count``s in parallel,
then a tree of ``merge``s.

    spider submit examples/wordcount.py --wait       # on a running cluster
    python examples/quickstart.py                    # on an embedded cluster it starts
"""

from __future__ import annotations

import _paths  # noqa: F401  (makes spider_examples importable)
from spider_examples import CHUNKS, count, merge, split

from spider.client import JobBuilder, TaskOutput

TEXT = (
    b"the quick brown fox jumps over the lazy dog and the dog sleeps while the fox runs "
    b"over the hill and the quick fox is gone before the lazy dog wakes"
)


def job(text: bytes = TEXT) -> JobBuilder:
    """The word-count job of ``text``: its one output is a ``dict`` of word counts."""
    builder = JobBuilder()
    chunks = builder.add(split, text)
    counts: list[TaskOutput] = [builder.add(count, chunks[k])[0] for k in range(CHUNKS)]
    while len(counts) > 1:  # pairwise merges: 4 -> 2 -> 1
        counts = [builder.add(merge, counts[k], counts[k + 1])[0] for k in range(0, len(counts), 2)]
    return builder
