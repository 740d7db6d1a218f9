"""Fixtures of the embedded-cluster tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.storage_service.grpc_client import StubModules, generated_stubs


@pytest.fixture(scope="session")
def stub_modules(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StubModules]:
    with generated_stubs(tmp_path_factory.mktemp("grpc_stubs")) as modules:
        yield modules
