"""A string field of a million characters is refused by its length before anything else, and the
refusal quotes only a short prefix of it (a long trailer stalls the server, docs/limits.md)."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
import zstandard

from spider.core.compression import decompress
from tests.unit.storage.jobs import flat, submission

from .conftest import RunningStorage

MILLION = 1_000_000
SHORT_MESSAGE = 300


def _graph_with_package(package: str) -> bytes:
    graph, _ = submission(flat(1), [1])
    text = decompress(graph).replace(b'"test_pkg"', f'"{package}"'.encode(), 1)
    # zstd squeezes a million equal characters into a few hundred bytes.
    return zstandard.ZstdCompressor(level=19).compress(text)


async def _refusal(storage: RunningStorage, service: str, method: str, **fields: Any) -> str:
    try:
        await storage.client.call(service, method, **fields)
    except grpc.RpcError as error:
        code, details = error.code(), error.details()
    else:
        raise AssertionError(f"{method} accepted a million-character string")
    assert code is grpc.StatusCode.INVALID_ARGUMENT, details[:SHORT_MESSAGE]
    assert isinstance(details, str)
    return details


async def test_a_package_name_of_a_million_characters_is_refused_by_its_length(
    storage: RunningStorage,
) -> None:
    group = await storage.add_group()
    _, inputs = submission(flat(1), [1])
    graph = _graph_with_package("p" * MILLION)
    assert len(graph) < 500

    message = await _refusal(
        storage,
        "JobOrchestrationService",
        "RegisterJob",
        resource_group_id=group,
        compressed_serialized_task_graph=graph,
        compressed_serialized_inputs=inputs,
    )

    assert len(message) < SHORT_MESSAGE
    assert f"package is {MILLION} characters, over the limit of 1024" in message


@pytest.mark.parametrize(
    ("service", "method", "fields"),
    [
        (
            "ExecutionManagerLivenessService",
            "RegisterExecutionManager",
            {"ip_address": "1" * MILLION},
        ),
        (
            "ExecutionManagerLivenessService",
            "RegisterExecutionManager",
            {"ip_address": "::" + "1" * 70},
        ),
        ("SchedulerRegistrationService", "RegisterScheduler", {"host": "h" * MILLION, "port": 1}),
        (
            "ResourceGroupManagementService",
            "AddResourceGroup",
            {"external_resource_group_id": "g" * MILLION},
        ),
    ],
    ids=["ip-address", "ip-address-just-over", "scheduler-host", "external-id"],
)
async def test_long_strings_are_refused_with_a_short_message(
    storage: RunningStorage, service: str, method: str, fields: dict[str, Any]
) -> None:
    message = await _refusal(storage, service, method, **fields)

    assert len(message) < SHORT_MESSAGE
    assert "over the limit" in message or "must be 1 to" in message
