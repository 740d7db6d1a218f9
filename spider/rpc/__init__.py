"""gRPC for Trio code, served and called on the Trio thread.

Call and serve gRPC as ordinary Trio code::

    async with trio.open_nursery() as nursery:
        port = await nursery.start(serve, [MySchedulerService()], "127.0.0.1", 0)
        async with connect_channel(Endpoint("127.0.0.1", port)) as channel:
            response = await channel.call(SchedulerServiceStub.next_task, request, deadline=5)

Failures arrive as ``RpcError`` subclasses, one per gRPC status; ``retry_transient`` (or
``Channel.call(..., retry=...)``) retries the transient ones, and ``TRANSIENT`` is that rule for
``spider.core.retry``. docs/rpc.md has the details.
"""

from spider.rpc._channel import Channel as Channel
from spider.rpc._channel import connect_channel as connect_channel
from spider.rpc._config import DEFAULT_DEADLINE as DEFAULT_DEADLINE
from spider.rpc._config import MAX_REQUEST_BYTES as MAX_REQUEST_BYTES
from spider.rpc._config import RPC_RETRY_BACKOFF as RPC_RETRY_BACKOFF
from spider.rpc._config import SHUTDOWN_GRACE as SHUTDOWN_GRACE
from spider.rpc._config import Endpoint as Endpoint
from spider.rpc._config import EndpointConfig as EndpointConfig
from spider.rpc._config import RpcConfig as RpcConfig
from spider.rpc._config import SecurityConfig as SecurityConfig
from spider.rpc._config import ServerConfig as ServerConfig
from spider.rpc._config import TlsConfig as TlsConfig
from spider.rpc._local import LocalChannel as LocalChannel
from spider.rpc._local import RpcChannel as RpcChannel
from spider.rpc._mapping import error_for_status as error_for_status
from spider.rpc._method import ServiceBase as ServiceBase
from spider.rpc._method import UnaryMethod as UnaryMethod
from spider.rpc._retry import TRANSIENT as TRANSIENT
from spider.rpc._retry import retry_transient as retry_transient
from spider.rpc._server import current_metadata as current_metadata
from spider.rpc._server import current_peer as current_peer
from spider.rpc._server import on_undelivered as on_undelivered
from spider.rpc._server import serve as serve
from spider.rpc.errors import AbortedError as AbortedError
from spider.rpc.errors import AlreadyExistsError as AlreadyExistsError
from spider.rpc.errors import CallCancelledError as CallCancelledError
from spider.rpc.errors import DataLossError as DataLossError
from spider.rpc.errors import DeadlineExceededError as DeadlineExceededError
from spider.rpc.errors import FailedPreconditionError as FailedPreconditionError
from spider.rpc.errors import InternalError as InternalError
from spider.rpc.errors import InvalidArgumentError as InvalidArgumentError
from spider.rpc.errors import ListenError as ListenError
from spider.rpc.errors import NotFoundError as NotFoundError
from spider.rpc.errors import OutOfRangeError as OutOfRangeError
from spider.rpc.errors import PermissionDeniedError as PermissionDeniedError
from spider.rpc.errors import ResourceExhaustedError as ResourceExhaustedError
from spider.rpc.errors import RpcError as RpcError
from spider.rpc.errors import Status as Status
from spider.rpc.errors import UnauthenticatedError as UnauthenticatedError
from spider.rpc.errors import UnavailableError as UnavailableError
from spider.rpc.errors import UnimplementedError as UnimplementedError
from spider.rpc.errors import UnknownError as UnknownError
