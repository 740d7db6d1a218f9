"""Fixtures of the storage database tests (``storage_database`` itself is in tests/conftest.py)."""

from __future__ import annotations

import pytest

from spider.core.ids import ResourceGroupId
from spider.storage.db import StorageDatabase

from .storage_helpers import add_group


@pytest.fixture
def group(storage_database: StorageDatabase) -> ResourceGroupId:
    """A resource group to submit jobs to."""
    return add_group(storage_database)
