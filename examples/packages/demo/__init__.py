"""A small TDL package for trying Spider-py out: see README.md."""

from __future__ import annotations

import attrs

from spider.tdl import task


@attrs.frozen
class WordCount:
    word: bytes
    count: int


@task(name="demo::fibonacci")
def fibonacci(n: int) -> int:
    """The n-th Fibonacci number, computed the slow way to give the executor some work."""
    return n if n < 2 else fibonacci(n - 1) + fibonacci(n - 2)


@task(name="demo::count_words")
def count_words(text: bytes) -> list[WordCount]:
    """How often each word occurs in ``text``, most frequent first."""
    counts: dict[bytes, int] = {}
    for word in text.lower().split():
        counts[word] = counts.get(word, 0) + 1
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return [WordCount(word, count) for word, count in ranked]


@task(name="demo::divide")
def divide(a: float, b: float) -> tuple[float, float]:
    """Quotient and remainder; dividing by zero fails the task with a readable message."""
    return a // b, a % b
