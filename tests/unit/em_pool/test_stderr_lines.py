"""``LineSplitter``: the same lines whatever the chunking, capped at a UTF-8 boundary."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from spider.em.pool._lines import LineSplitter, StderrLine


def split(chunks: list[bytes], cap: int) -> list[StderrLine]:
    splitter = LineSplitter(cap)
    lines = [line for chunk in chunks for line in splitter.feed(chunk)]
    return lines + splitter.finish()


def test_lines_split_on_newline_with_one_carriage_return_stripped() -> None:
    assert split([b"a\r\nb\n\r\r\nc"], 100) == [
        StderrLine(b"a"),
        StderrLine(b"b"),
        StderrLine(b"\r"),
        StderrLine(b"c"),
    ]


def test_a_final_line_without_newline_is_kept_and_empty_lines_are_lines() -> None:
    assert split([b"\n\nlast"], 100) == [StderrLine(b""), StderrLine(b""), StderrLine(b"last")]
    assert split([b""], 100) == []


def test_an_oversized_line_is_truncated_and_the_next_line_is_intact() -> None:
    # Upstream's test: cap 8, "short / far-too-long-to-capture / next"; upstream drops the
    # long line, we keep its start and count the rest.
    assert split([b"short\nfar-too-long-to-capture\nnext\n"], 8) == [
        StderrLine(b"short"),
        StderrLine(b"far-too-", cut_bytes=len(b"far-too-long-to-capture") - 8),
        StderrLine(b"next"),
    ]


def test_a_line_of_exactly_the_cap_is_whole_even_with_a_carriage_return() -> None:
    assert split([b"12345678\r\n"], 8) == [StderrLine(b"12345678")]
    assert split([b"123456789\r\n"], 8) == [StderrLine(b"12345678", cut_bytes=1)]


def test_truncation_does_not_split_a_utf8_character() -> None:
    line = "aaaaaa€€".encode()  # 6 + 3 + 3 bytes
    assert split([line + b"\n"], 8) == [StderrLine(b"aaaaaa", cut_bytes=6)]


def test_bytes_that_are_not_utf8_are_cut_at_the_cap_exactly() -> None:
    assert split([b"\xff\xfe" * 10 + b"\n"], 7) == [StderrLine(b"\xff\xfe\xff\xfe\xff\xfe\xff", 13)]
    # A lead byte whose sequence the cap cuts short goes too, even in otherwise binary data.
    assert split([b"\xff\xff\xe2\x82\xac\n"], 4) == [StderrLine(b"\xff\xff", 3)]


def test_memory_stays_bounded_by_the_cap_for_an_endless_line() -> None:
    splitter = LineSplitter(16)
    for _ in range(1000):
        assert splitter.feed(b"x" * 4096) == []
    (line,) = splitter.feed(b"\n")
    assert line == StderrLine(b"x" * 16, cut_bytes=4096 * 1000 - 16)


def _chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({0, len(data), *(cut % (len(data) + 1) for cut in cuts)})
    return [data[start:end] for start, end in itertools.pairwise(points)]


_LINE = st.one_of(st.text(max_size=40).map(str.encode), st.binary(max_size=40)).map(
    lambda line: line.replace(b"\n", b"")
)


@settings(max_examples=200)
@given(
    lines=st.lists(_LINE, max_size=8),
    endings=st.lists(st.sampled_from([b"\n", b"\r\n"]), min_size=8, max_size=8),
    trailing_newline=st.booleans(),
    cuts=st.lists(st.integers(min_value=0), max_size=10),
    cap=st.integers(min_value=4, max_value=48),
)
def test_any_chunking_gives_the_lines_cut_correctly(
    lines: list[bytes],
    endings: list[bytes],
    trailing_newline: bool,
    cuts: list[int],
    cap: int,
) -> None:
    endings = endings[: len(lines)]
    if lines and not trailing_newline:
        endings[-1] = b""
        if not lines[-1]:
            lines, endings = lines[:-1], endings[:-1]  # nothing after the last newline: no line
    data = b"".join(line + ending for line, ending in zip(lines, endings, strict=True))
    result = split(_chunked(data, cuts), cap)
    assert result == split([data], cap)
    assert len(result) == len(lines)
    for original, ending, line in zip(lines, endings, result, strict=True):
        # One '\r' before the end of a line goes: the ending's, or else the line's own.
        content = original[:-1] if ending != b"\r\n" and original.endswith(b"\r") else original
        assert content.startswith(line.data)
        assert len(line.data) + line.cut_bytes == len(content)
        assert (line.cut_bytes > 0) == (len(content) > cap)
        if line.cut_bytes:
            assert cap - 3 <= len(line.data) <= cap
            try:
                whole = content.decode()
            except UnicodeDecodeError:
                continue
            kept = line.data.decode()  # a valid line is never cut inside a character
            assert len(kept.encode()) + len(whole[len(kept)].encode()) > cap
