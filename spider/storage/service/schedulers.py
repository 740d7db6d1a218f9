"""``SchedulerRegistrationService``: the scheduler registers (the last one wins)."""

from __future__ import annotations

from spider.proto import common
from spider.proto import storage as storage_pb
from spider.storage.service._errors import answering_storage_errors
from spider.storage.service._unpack import scheduler_endpoint_from_proto
from spider.storage.state import StorageState


class SchedulerRegistrationService(storage_pb.SchedulerRegistrationServiceBase):
    """Scheduler registration, and the list of registered schedulers."""

    def __init__(self, state: StorageState) -> None:
        self._state = state

    async def register_scheduler(
        self, register_scheduler_request: storage_pb.RegisterSchedulerRequest
    ) -> storage_pb.RegisterSchedulerResponse:
        """Replace the registered scheduler; a replacement gets all ready work again."""
        host, port = scheduler_endpoint_from_proto(
            register_scheduler_request.host, register_scheduler_request.port
        )
        with answering_storage_errors("RegisterScheduler"):
            registration = await self._state.register_scheduler(host, port)
        return storage_pb.RegisterSchedulerResponse(
            registration=storage_pb.SchedulerRegistration(
                scheduler_id=registration.scheduler_id, session_id=registration.session_id
            )
        )

    async def get_schedulers(self, common_void: common.Void) -> storage_pb.GetSchedulersResponse:
        """The registered schedulers (upstream answers UNIMPLEMENTED; Spider-py answers)."""
        with answering_storage_errors("GetSchedulers"):
            schedulers = await self._state.get_schedulers()
        return storage_pb.GetSchedulersResponse(
            schedulers=storage_pb.SchedulerRegistrations(
                schedulers=[
                    storage_pb.Scheduler(
                        scheduler_id=info.scheduler_id, host=info.host, port=info.port
                    )
                    for info in schedulers
                ]
            )
        )
