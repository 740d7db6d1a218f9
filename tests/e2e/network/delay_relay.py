"""A TCP relay that delays every byte by a fixed time: latency where the kernel has no netem.

``python delay_relay.py LISTEN_HOST LISTEN_PORT TARGET_HOST TARGET_PORT DELAY_MS`` accepts on
the listen address and forwards each connection to the target, both ways. It starts with no
delay; SIGUSR1 turns the delay on and SIGUSR2 off again, for connections already open too
(gRPC's connections live for the whole run). Order is kept: a chunk read at ``t`` is written
at ``t + delay`` and never before the chunk read ahead of it. It prints ``relay listening`` on
stderr once it accepts.

Unlike netem it delays the byte stream, not packets: TCP's own acknowledgements between a peer
and the relay are not delayed, so windows and retransmission timers see the undelayed round
trip. docs/reliability.md, "The test network", says what that leaves out.
"""

from __future__ import annotations

import signal
import sys
from functools import partial

import trio

BUFFERED_CHUNKS = 256
"""Chunks in flight per direction before the relay stops reading (bounded memory)."""


class Delay:
    """The delay now in force, in seconds; signals switch it."""

    def __init__(self, seconds: float) -> None:
        self.configured = seconds
        self.now = 0.0


async def _read(
    source: trio.SocketStream, chunks: trio.MemorySendChannel[tuple[float, bytes]], delay: Delay
) -> None:
    async with chunks:
        while data := await source.receive_some(65536):
            await chunks.send((trio.current_time() + delay.now, data))


async def _write(
    target: trio.SocketStream, chunks: trio.MemoryReceiveChannel[tuple[float, bytes]]
) -> None:
    async with chunks:
        async for due, data in chunks:
            await trio.sleep_until(due)
            await target.send_all(data)
    await target.send_eof()


async def _one_way(source: trio.SocketStream, target: trio.SocketStream, delay: Delay) -> None:
    send, receive = trio.open_memory_channel[tuple[float, bytes]](BUFFERED_CHUNKS)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_read, source, send, delay)
        nursery.start_soon(_write, target, receive)


async def _relay(
    target_host: str, target_port: int, delay: Delay, client: trio.SocketStream
) -> None:
    try:
        async with (
            client,
            await trio.open_tcp_stream(target_host, target_port) as server,
            trio.open_nursery() as nursery,
        ):
            nursery.start_soon(_one_way, client, server, delay)
            nursery.start_soon(_one_way, server, client, delay)
    except (OSError, trio.BrokenResourceError, trio.ClosedResourceError):
        pass  # either side went away: the connection ends, as it would without the relay


async def _switch(delay: Delay, *, task_status: trio.TaskStatus[None]) -> None:
    with trio.open_signal_receiver(signal.SIGUSR1, signal.SIGUSR2) as signals:
        task_status.started()
        async for number in signals:
            delay.now = delay.configured if number == signal.SIGUSR1 else 0.0
            print(f"relay delay now {delay.now * 1000:g} ms", file=sys.stderr, flush=True)


async def main(listen_host: str, listen_port: int, target: str, target_port: int, ms: int) -> None:
    delay = Delay(ms / 1000)
    listeners = await trio.open_tcp_listeners(listen_port, host=listen_host)
    async with trio.open_nursery() as nursery:
        await nursery.start(_switch, delay)
        print("relay listening", file=sys.stderr, flush=True)
        await trio.serve_listeners(partial(_relay, target, target_port, delay), listeners)


if __name__ == "__main__":
    host, port, target_host, target_port, delay_ms = sys.argv[1:]
    trio.run(main, host, int(port), target_host, int(target_port), int(delay_ms))
