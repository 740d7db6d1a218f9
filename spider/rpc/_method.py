"""What ``Channel.call`` and ``serve`` know of an RPC: ``UnaryMethod`` and ``ServiceBase``.

``tools/gen_protos.py`` writes, for every service of ``protos/``, a ``...Stub`` class holding one
``UnaryMethod`` per RPC (``SchedulerServiceStub.next_task``) and a ``...Base`` class whose
methods a Trio service overrides (``SchedulerServiceBase.next_task``).
"""

from __future__ import annotations

from typing import Any, ClassVar, Generic, TypeVar

import attrs

_RequestT = TypeVar("_RequestT")
_ReplyT = TypeVar("_ReplyT")


@attrs.frozen
class UnaryMethod(Generic[_RequestT, _ReplyT]):
    """One unary RPC: its gRPC route and message classes, and the name of the Python method
    that serves it."""

    route: str
    """``/scheduler.SchedulerService/NextTask``: what goes on the wire."""
    name: str
    """``next_task``: the method of the service base class that handles it."""
    request_type: type[_RequestT]
    reply_type: type[_ReplyT]

    def __str__(self) -> str:
        return self.route


class ServiceBase:
    """A generated service base class (``SchedulerServiceBase``), for ``serve`` and
    ``LocalChannel``: each of ``rpc_methods`` is served by the method named after it."""

    rpc_methods: ClassVar[tuple[UnaryMethod[Any, Any], ...]] = ()
