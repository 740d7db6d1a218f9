"""Map-reduce word count: fan out over chunks of a text, fan back in by merging counts.

A job is ``split`` (one text in, ``CHUNKS`` chunks out), one ``count`` per chunk, then a binary
tree of ``merge`` tasks down to one ``dict`` of word counts.
"""

from __future__ import annotations

from spider.tdl import TaskContext, task

from ._journal import journaled

CHUNKS = 4


@task(name="wordcount::split")
def split(ctx: TaskContext, text: bytes) -> tuple[bytes, bytes, bytes, bytes]:
    """Cut ``text`` into ``CHUNKS`` runs of whole words, as even as the words allow."""
    with journaled(ctx):
        words = text.split()
        size = max(1, -(-len(words) // CHUNKS))  # ceiling division: the last chunks may be short
        chunks = [b" ".join(words[start : start + size]) for start in range(0, size * CHUNKS, size)]
        return chunks[0], chunks[1], chunks[2], chunks[3]


@task(name="wordcount::count")
def count(ctx: TaskContext, chunk: bytes) -> dict[bytes, int]:
    """How often each (lower-cased) word occurs in ``chunk``."""
    with journaled(ctx):
        counts: dict[bytes, int] = {}
        for word in chunk.lower().split():
            counts[word] = counts.get(word, 0) + 1
        return counts


@task(name="wordcount::merge")
def merge(ctx: TaskContext, a: dict[bytes, int], b: dict[bytes, int]) -> dict[bytes, int]:
    """The sum of two word counts."""
    with journaled(ctx):
        merged = dict(a)
        for word, n in b.items():
            merged[word] = merged.get(word, 0) + n
        return merged
