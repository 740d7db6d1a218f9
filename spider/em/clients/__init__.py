"""The EM's clients of storage and the scheduler over gRPC (``spider.em.ports`` Protocols).

``open_grpc_clients(storage, scheduler, ...)`` yields an ``EmClients`` bundle; each call raises
``spider.em.errors.EmClientError`` subclasses mapped from gRPC status codes as upstream does.
"""

from spider.em.clients._grpc import (
    ClientDeadlines,
    GrpcLivenessClient,
    GrpcSchedulerClient,
    GrpcStorageClient,
    local_clients,
    open_grpc_clients,
)

__all__ = [
    "ClientDeadlines",
    "GrpcLivenessClient",
    "GrpcSchedulerClient",
    "GrpcStorageClient",
    "local_clients",
    "open_grpc_clients",
]
