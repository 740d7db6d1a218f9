"""``ExecutionManagerLivenessService``: EMs register and heartbeat."""

from __future__ import annotations

from spider.core.ids import ExecutionManagerId
from spider.proto import storage as storage_pb
from spider.storage.service._errors import answering_storage_errors
from spider.storage.service._unpack import ip_address_from_proto, stored_id
from spider.storage.state import StorageState


class ExecutionManagerLivenessService(storage_pb.ExecutionManagerLivenessServiceBase):
    """EM registration (a new id each time) and heartbeats."""

    def __init__(self, state: StorageState) -> None:
        self._state = state

    async def register_execution_manager(
        self, register_execution_manager_request: storage_pb.RegisterExecutionManagerRequest
    ) -> storage_pb.RegisterExecutionManagerResponse:
        """A new Alive EM and the current session."""
        ip_address = ip_address_from_proto(register_execution_manager_request.ip_address)
        with answering_storage_errors("RegisterExecutionManager"):
            registration = await self._state.register_execution_manager(ip_address)
        return storage_pb.RegisterExecutionManagerResponse(
            registration=storage_pb.ExecutionManagerRegistration(
                execution_manager_id=registration.execution_manager_id,
                session_id=registration.session_id,
            )
        )

    async def update_execution_manager_heartbeat(
        self, execution_manager_id_request: storage_pb.ExecutionManagerIdRequest
    ) -> storage_pb.UpdateExecutionManagerHeartbeatResponse:
        """Record a heartbeat; INVALID_ARGUMENT if unknown, FAILED_PRECONDITION if dead."""
        em_id = ExecutionManagerId(
            stored_id(execution_manager_id_request.execution_manager_id, "execution_manager_id")
        )
        with answering_storage_errors("UpdateExecutionManagerHeartbeat"):
            session = await self._state.update_execution_manager_heartbeat(em_id)
        return storage_pb.UpdateExecutionManagerHeartbeatResponse(session_id=session)
