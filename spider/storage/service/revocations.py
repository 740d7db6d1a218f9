"""``InstanceRevocationService``: Spider-py's extension (``spider_py.revocation``), not Spider's
protocol.

Served beside Spider's seven services; Spider-py's EMs long-poll it for the instances storage no
longer wants (``spider.storage.revocations``), and keep upstream's behaviour against a storage
that answers UNIMPLEMENTED.
"""

from __future__ import annotations

from spider.core.ids import ExecutionManagerId, SessionId
from spider.proto.spider_py import revocation as revocation_pb
from spider.storage.service._errors import answering_storage_errors
from spider.storage.service._unpack import stored_id
from spider.storage.state import StorageState


class InstanceRevocationService(revocation_pb.InstanceRevocationServiceBase):
    """``WaitRevokedInstances``: a long poll of one EM's revoked instances."""

    def __init__(self, state: StorageState) -> None:
        self._state = state

    async def wait_revoked_instances(
        self, wait_revoked_instances_request: revocation_pb.WaitRevokedInstancesRequest
    ) -> revocation_pb.WaitRevokedInstancesResponse:
        """Answers at once when the EM has revocations it has not acknowledged, else waits."""
        request = wait_revoked_instances_request
        with answering_storage_errors("WaitRevokedInstances"):
            answer = await self._state.wait_revoked_instances(
                ExecutionManagerId(stored_id(request.execution_manager_id, "execution_manager_id")),
                SessionId(stored_id(request.session_id, "session_id")),
                request.known_revision,
                request.wait_time_ms / 1000,
            )
        return revocation_pb.WaitRevokedInstancesResponse(
            session_id=self._state.session,
            revision=answer.revision,
            task_instance_ids=answer.instance_ids,
        )
