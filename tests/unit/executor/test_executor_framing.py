"""Framing over real pipes: the parent's ``FramedPipe`` and the executor's ``FrameChannel``."""

from __future__ import annotations

import contextlib
import itertools
import os
from collections.abc import Iterator

import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from executor_bin._channel import FrameChannel, OversizedFrame
from spider.executor import ExecutorProtocolError, FramedPipe, FrameTooLargeError
from spider.executor.protocol import HEADER

LIMIT = 4096
BODIES = st.lists(st.binary(max_size=LIMIT), max_size=6)


def framed(body: bytes) -> bytes:
    return HEADER.pack(len(body)) + body


@pytest.fixture
def pipe_fds() -> Iterator[tuple[int, int]]:
    """A fresh OS pipe ``(read_fd, write_fd)``, closed afterwards if still open."""
    read_fd, write_fd = os.pipe()
    yield read_fd, write_fd
    for fd in (read_fd, write_fd):
        with contextlib.suppress(OSError):
            os.close(fd)


def slices(data: bytes, cuts: list[int]) -> list[bytes]:
    """``data`` cut at the given (sorted, deduplicated) offsets."""
    points = [0, *sorted({cut % (len(data) + 1) for cut in cuts}), len(data)]
    return [data[start:end] for start, end in itertools.pairwise(points) if end > start]


async def _receive_all(read_fd: int, write_fd: int, chunks: list[bytes], count: int) -> list[bytes]:
    os.set_blocking(read_fd, False)
    os.set_blocking(write_fd, False)
    pipe = FramedPipe(write_fd, read_fd, LIMIT)
    received: list[bytes] = []
    async with trio.open_nursery() as nursery:

        async def writer() -> None:
            for chunk in chunks:
                await pipe.send_frame(chunk)
                await trio.lowlevel.checkpoint()
            os.close(write_fd)

        nursery.start_soon(writer)
        for _ in range(count):
            body = await pipe.receive_frame()
            assert body is not None
            received.append(body)
        assert await pipe.receive_frame() is None
    return received


@settings(max_examples=50, deadline=None)
@given(BODIES, st.lists(st.integers(min_value=0), max_size=8))
def test_framed_pipe_reassembles_frames_however_they_are_cut(
    bodies: list[bytes], cuts: list[int]
) -> None:
    stream = b"".join(framed(body) for body in bodies)
    read_fd, write_fd = os.pipe()
    try:
        received = trio.run(_receive_all, read_fd, write_fd, slices(stream, cuts), len(bodies))
    finally:
        os.close(read_fd)
    assert received == bodies


async def test_framed_pipe_gives_none_at_end_of_file_inside_a_frame(
    pipe_fds: tuple[int, int],
) -> None:
    read_fd, write_fd = pipe_fds
    os.set_blocking(read_fd, False)
    os.write(write_fd, framed(b"hello")[:-1])
    os.close(write_fd)
    assert await FramedPipe(-1, read_fd, LIMIT).receive_frame() is None


async def test_framed_pipe_rejects_a_header_over_the_limit(pipe_fds: tuple[int, int]) -> None:
    read_fd, write_fd = pipe_fds
    os.set_blocking(read_fd, False)
    os.write(write_fd, HEADER.pack(LIMIT + 1) + b"x" * 10)
    with pytest.raises(FrameTooLargeError, match=f"{LIMIT + 1} bytes exceeds"):
        await FramedPipe(-1, read_fd, LIMIT).receive_frame()


async def test_framed_pipe_send_to_a_closed_reader_is_a_broken_resource(
    pipe_fds: tuple[int, int],
) -> None:
    read_fd, write_fd = pipe_fds
    os.set_blocking(write_fd, False)
    os.close(read_fd)
    with pytest.raises(trio.BrokenResourceError, match="executor pipe failed"):
        await FramedPipe(write_fd, -1, LIMIT).send_frame(framed(b"x"))


async def test_framed_pipe_on_a_closed_fd_is_a_closed_resource() -> None:
    read_fd, write_fd = os.pipe()
    os.close(read_fd)
    os.close(write_fd)
    with pytest.raises(trio.ClosedResourceError):
        await FramedPipe(write_fd, read_fd, LIMIT).receive_frame()


async def test_framed_pipe_of_process_needs_pipes() -> None:
    process = await trio.lowlevel.open_process(["true"])
    try:
        with pytest.raises(TypeError, match="stdin and stdout pipes"):
            FramedPipe.of_process(process, LIMIT)
    finally:
        await process.wait()


def _channel_frames(stream: bytes) -> list[bytes | OversizedFrame]:
    """Everything a ``FrameChannel`` reads from ``stream`` up to a clean end-of-file."""
    read_fd, write_fd = os.pipe()
    try:
        os.write(write_fd, stream)
        os.close(write_fd)
        channel = FrameChannel(read_fd, -1, LIMIT)
        frames: list[bytes | OversizedFrame] = []
        while (body := channel.read_frame()) is not None:
            frames.append(body if isinstance(body, OversizedFrame) else bytes(body))
        return frames
    finally:
        os.close(read_fd)


@settings(max_examples=50)
# At most 5 frames of at most 8 KiB: the whole stream fits in the pipe's 64 KiB buffer.
@given(
    st.lists(st.one_of(st.binary(max_size=LIMIT), st.integers(LIMIT + 1, 2 * LIMIT)), max_size=5)
)
def test_frame_channel_reads_frames_and_skips_oversized_ones(
    items: list[bytes | int],
) -> None:
    stream = b"".join(
        framed(item) if isinstance(item, bytes) else HEADER.pack(item) + b"\xee" * item
        for item in items
    )
    expected = [item if isinstance(item, bytes) else OversizedFrame(item) for item in items]
    assert _channel_frames(stream) == expected


@pytest.mark.parametrize(
    ("stream", "needle"),
    [
        (b"\x00\x00", "inside the header (2 of 4 bytes read)"),
        (framed(b"hello")[:-2], "inside the body (3 of 5 bytes read)"),
        (HEADER.pack(LIMIT + 5) + b"x" * 10, f"inside an oversized body (10 of {LIMIT + 5} bytes"),
        (framed(b"x" * 100) + framed(b"y" * 200)[:150], "inside the body (146 of 200 bytes read)"),
    ],
)
def test_frame_channel_end_of_file_inside_a_frame_is_a_protocol_error(
    stream: bytes, needle: str
) -> None:
    with pytest.raises(ExecutorProtocolError, match=needle.replace("(", r"\(").replace(")", r"\)")):
        _channel_frames(stream)


def test_frame_channel_writes_one_frame_per_reply() -> None:
    read_fd, write_fd = os.pipe()
    try:
        channel = FrameChannel(-1, write_fd, LIMIT)
        channel.write_frame(b"abc")
        channel.write_frame(b"")
        assert os.read(read_fd, 100) == framed(b"abc") + framed(b"")
    finally:
        os.close(read_fd)
        os.close(write_fd)


async def test_frame_channel_large_writes_complete_against_a_slow_reader() -> None:
    read_fd, write_fd = os.pipe()
    body = bytes(range(256)) * 2048  # 512 KiB: several pipe buffers
    received = bytearray()
    try:
        async with trio.open_nursery() as nursery:

            async def read_everything() -> None:
                while len(received) < len(body) + HEADER.size:
                    received.extend(await trio.to_thread.run_sync(os.read, read_fd, 65536))

            nursery.start_soon(read_everything)
            channel = FrameChannel(-1, write_fd, len(body))
            await trio.to_thread.run_sync(channel.write_frame, body)
    finally:
        os.close(read_fd)
        os.close(write_fd)
    assert bytes(received) == framed(body)
