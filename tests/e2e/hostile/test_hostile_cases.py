"""The hostile client's requests, against the real processes (docs/limits.md): each gets its
client error, quotes at most a short prefix of what it rejects, and no service stalls (conftest's
probe)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import grpc
import pytest
import zstandard

from spider.core.compression import decompress
from tests.hostile import MIB, length_delimited, zstd_bomb_inputs
from tests.integration.storage_service.grpc_client import GrpcEm, StorageClient, StubModules
from tests.unit.storage.jobs import flat, submission

from .conftest import HostileTarget
from .raw_client import call

JOBS = "JobOrchestrationService"
MILLION = 1_000_000
SHORT = 300


@pytest.fixture(scope="module")
def client(target: HostileTarget, stub_modules: StubModules) -> Iterator[StorageClient]:
    storage = StorageClient.connect(stub_modules, target.cluster.storage_port)
    yield storage
    storage.close()


def _refusal(client: StorageClient, service: str, method: str, **fields: Any) -> tuple[Any, str]:
    try:
        client.sync(service, method, **fields)
    except grpc.RpcError as error:
        return error.code(), error.details() or ""
    raise AssertionError(f"{method} was accepted")


def _group(client: StorageClient, name: str) -> int:
    reply = client.sync(
        "ResourceGroupManagementService",
        "AddResourceGroup",
        external_resource_group_id=name,
        password=b"secret",
    )
    group: int = reply.resource_group_id
    return group


def test_a_200_byte_register_job_naming_a_million_character_package(
    client: StorageClient,
) -> None:
    graph, inputs = submission(flat(1), [1])
    text = decompress(graph).replace(b'"test_pkg"', b'"' + b"p" * MILLION + b'"', 1)
    small = zstandard.ZstdCompressor(level=19).compress(text)
    assert len(small) < 500

    code, message = _refusal(
        client,
        JOBS,
        "RegisterJob",
        resource_group_id=_group(client, "package"),
        compressed_serialized_task_graph=small,
        compressed_serialized_inputs=inputs,
    )

    assert code is grpc.StatusCode.INVALID_ARGUMENT
    assert len(message) < SHORT


def test_register_execution_manager_with_a_million_character_ip_address(
    client: StorageClient,
) -> None:
    code, message = _refusal(
        client,
        "ExecutionManagerLivenessService",
        "RegisterExecutionManager",
        ip_address="1" * MILLION,
    )

    assert code is grpc.StatusCode.INVALID_ARGUMENT
    assert len(message) < SHORT


def test_a_6_kb_register_job_whose_inputs_decompress_to_200_mib(client: StorageClient) -> None:
    graph, _ = submission(flat(1), [1])

    code, message = _refusal(
        client,
        JOBS,
        "RegisterJob",
        resource_group_id=_group(client, "bomb"),
        compressed_serialized_task_graph=graph,
        compressed_serialized_inputs=zstd_bomb_inputs(200 * MIB),
    )

    assert code is grpc.StatusCode.INVALID_ARGUMENT
    assert "runtime.limits.max_job_inputs_bytes" in message


@pytest.mark.parametrize("huge", [2**63, 2**64 - 1])
def test_ids_past_the_databases_range(client: StorageClient, huge: int) -> None:
    for method in ("StartJob", "CancelJob", "GetJobState", "GetJobOutputs", "GetJobError"):
        assert _refusal(client, JOBS, method, job_id=huge)[0] is grpc.StatusCode.NOT_FOUND
    code, _ = _refusal(
        client,
        "ExecutionManagerLivenessService",
        "UpdateExecutionManagerHeartbeat",
        execution_manager_id=huge,
    )
    assert code is grpc.StatusCode.INVALID_ARGUMENT
    code, _ = _refusal(
        client,
        "ResourceGroupManagementService",
        "VerifyResourceGroup",
        resource_group_id=huge,
        password=b"x",
    )
    assert code is grpc.StatusCode.INVALID_ARGUMENT


def test_a_report_over_the_request_cap(target: HostileTarget) -> None:
    # 130 MiB: over the 128 MiB default, refused from the length prefix before it is read.
    body = length_delimited(6, bytes(130 * MIB))

    code, message = call(
        target.storage, "/storage.TaskInstanceManagementService/ReportTaskSuccess", body
    )

    assert code is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "max_request_bytes" in message


def test_a_20_mb_error_message_is_stored_truncated(client: StorageClient) -> None:
    graph, inputs = submission(flat(1), [1])
    job = client.sync(
        JOBS,
        "RegisterJob",
        resource_group_id=_group(client, "error"),
        compressed_serialized_task_graph=graph,
        compressed_serialized_inputs=inputs,
    ).job_id
    client.sync(JOBS, "StartJob", job_id=job)
    em = GrpcEm.register(client)
    # The scheduler may hold the ready task; registering an instance does not need it.
    context = em.register_instance(job, client.task_id(0))

    em.fail(job, client.task_id(0), context, "x" * (20 * 1000 * 1000))

    error = client.sync(JOBS, "GetJobError", job_id=job).error_message
    assert len(error) == 64 * 1024
    assert "truncated" in error
