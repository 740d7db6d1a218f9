"""Fixtures: a real storage service in-process on SQLite, a client of it, and a fake EM."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import trio

from spider.client import SpiderClient, open_client
from spider.rpc import Endpoint, connect_channel
from spider.storage import StorageConfig
from spider.storage.db import SqliteConfig
from spider.storage.server import StorageLaunch, serve_storage
from tests.fake_em import FakeEm, tdl_runner
from tests.unit.client import tasks

TASKS: dict[str, Callable[..., Any]] = {
    "math::add": tasks.add,
    "math::double": tasks.double,
    "math::split": tasks.split,
    "fails": tasks.fails,
}


@pytest.fixture
async def storage_port(tmp_path: Path) -> AsyncIterator[int]:
    """The port of a storage service serving on loopback, with the RPC bridge open."""
    launch = StorageLaunch(StorageConfig(host="127.0.0.1", port=0), SqliteConfig(tmp_path / "db"))
    async with trio.open_nursery() as nursery:
        port: int = await nursery.start(serve_storage, launch)
        yield port
        nursery.cancel_scope.cancel()


@pytest.fixture
async def client(storage_port: int) -> AsyncIterator[SpiderClient]:
    async with open_client(Endpoint("127.0.0.1", storage_port)) as spider:
        yield spider


@pytest.fixture
async def fake_em(storage_port: int) -> AsyncIterator[FakeEm]:
    async with connect_channel(Endpoint("127.0.0.1", storage_port)) as channel:
        em = FakeEm(channel, tdl_runner(TASKS))
        await em.register()
        yield em
