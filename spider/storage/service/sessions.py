"""``SessionManagementService``: the current storage session."""

from __future__ import annotations

from spider.proto import common
from spider.proto import storage as storage_pb
from spider.storage.state import StorageState


class SessionManagementService(storage_pb.SessionManagementServiceBase):
    """``GetSession``, which never fails."""

    def __init__(self, state: StorageState) -> None:
        self._state = state

    async def get_session(self, common_void: common.Void) -> storage_pb.GetSessionResponse:
        """This process's session id (a new one after every restart)."""
        return storage_pb.GetSessionResponse(session_id=self._state.session)
