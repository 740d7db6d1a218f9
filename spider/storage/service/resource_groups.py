"""``ResourceGroupManagementService``: resource groups, the owners of jobs."""

from __future__ import annotations

from spider.core.ids import ResourceGroupId
from spider.proto import common
from spider.proto import storage as storage_pb
from spider.storage.service._errors import answering_storage_errors
from spider.storage.service._unpack import stored_id
from spider.storage.state import StorageState


class ResourceGroupManagementService(storage_pb.ResourceGroupManagementServiceBase):
    """Adding and verifying resource groups."""

    def __init__(self, state: StorageState) -> None:
        self._state = state

    async def add_resource_group(
        self, add_resource_group_request: storage_pb.AddResourceGroupRequest
    ) -> storage_pb.ResourceGroupIdResponse:
        """A new group; ALREADY_EXISTS for a taken external id."""
        request = add_resource_group_request
        with answering_storage_errors("AddResourceGroup"):
            group_id = await self._state.add_resource_group(
                request.external_resource_group_id, request.password
            )
        return storage_pb.ResourceGroupIdResponse(resource_group_id=group_id)

    async def verify_resource_group(
        self, verify_resource_group_request: storage_pb.VerifyResourceGroupRequest
    ) -> common.Void:
        """UNAUTHENTICATED unless the group exists and the password matches."""
        request = verify_resource_group_request
        with answering_storage_errors("VerifyResourceGroup"):
            await self._state.verify_resource_group(
                ResourceGroupId(stored_id(request.resource_group_id, "resource_group_id")),
                request.password,
            )
        return common.Void()
