"""Where to connect and the edge timeouts of gRPC calls and servers, as named defaults."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import attrs

from spider.core.backoff import Backoff

if TYPE_CHECKING:
    from spider.rpc.auth import ClusterAuth

DEFAULT_DEADLINE = 10.0
"""Seconds a call may take when its caller names no deadline. Never unbounded: upstream Spider
sets no deadlines, so a hung peer could hang an EM's shutdown forever
(docs/upstream.md#retries-and-deadlines)."""

RPC_RETRY_BACKOFF = Backoff(initial=0.1, multiplier=2.0, cap=3.0, jitter=0.02, max_attempts=11)
"""Upstream Spider's retry helper: 100 ms doubling to 3 s, plus 0-20 ms, 10 retries after the
first attempt (docs/upstream.md#retries-and-deadlines)."""

MAX_REQUEST_BYTES = 128 << 20
"""The largest request message a server reads: twice storage's default cap on one task's
outputs, so a report at that cap fits with room to spare."""

SHUTDOWN_GRACE = 5.0
"""Seconds a stopping server waits to write a connection's GOAWAY to a client that does not read."""


def _positive_seconds(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(
            f"{type(instance).__name__}.{attribute.name} must be a positive, finite number of "
            f"seconds, got {value!r}"
        )


def _at_least_one(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if value < 1:
        raise ValueError(f"{type(instance).__name__}.{attribute.name} must be >= 1, got {value!r}")


def _valid_port(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if not 0 <= value <= 65535:
        raise ValueError(f"port {value!r} is outside 0..65535")


@attrs.frozen
class Endpoint:
    """A gRPC server's address: host name or IP, and TCP port."""

    host: str
    port: int = attrs.field(validator=_valid_port)

    @classmethod
    def parse(cls, text: str) -> Endpoint:
        """Parse ``host:port`` (``[v6addr]:port`` for IPv6), as upstream config files write it."""
        host, sep, port = text.rpartition(":")
        if not sep or not host or not port.isdecimal():
            raise ValueError(
                f"endpoint {text!r} is not of the form host:port (e.g. 127.0.0.1:50051)"
            )
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        return cls(host, int(port))

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def _non_empty_host(instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    if not value:
        raise ValueError(f"{attribute.name} must not be empty")


def _configured_port(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise ValueError(f"{attribute.name} must be an integer from 1 to 65535, got {value!r}")


@attrs.frozen
class EndpointConfig:
    """A gRPC server as a service's YAML names it: ``{host, port}`` (the scheduler's
    ``storage_endpoint``, the EM's ``storage`` and ``scheduler``)."""

    host: str = attrs.field(validator=_non_empty_host)
    port: int = attrs.field(validator=_configured_port)

    def endpoint(self) -> Endpoint:
        """As ``spider.rpc`` takes it."""
        return Endpoint(self.host, self.port)


@attrs.frozen
class TlsConfig:
    """TLS for a component's gRPC connections: its YAML's ``security.tls`` (docs/security.md).

    One block serves both roles of a component: as a server it presents ``cert`` and, with
    ``require_client_cert``, accepts only clients whose certificate ``ca`` signed (mutual TLS);
    as a client it checks the server's certificate against ``ca`` and presents ``cert`` when
    given (what a server with ``require_client_cert`` needs).
    """

    ca: Path | None = None
    """PEM bundle of the CA(s) that sign peers' certificates; ``None``: the system's CAs (a
    client) or no client certificates checked (a server)."""
    cert: Path | None = None
    """PEM certificate chain of this component (a server must have one)."""
    key: Path | None = None
    """PEM private key of ``cert``."""
    require_client_cert: bool = False
    """As a server: refuse clients without a certificate signed by ``ca`` (mutual TLS)."""
    server_name: str | None = None
    """As a client: the name the server's certificate must carry, if not the host connected to
    (a certificate issued for a DNS name, reached by IP address)."""

    def __attrs_post_init__(self) -> None:
        if (self.cert is None) != (self.key is None):
            raise ValueError("tls.cert and tls.key go together: give both files or neither")
        if self.require_client_cert and self.ca is None:
            raise ValueError(
                "tls.require_client_cert needs tls.ca, the CA that signs client certificates"
            )


@attrs.frozen
class SecurityConfig:
    """A component's ``security`` block: TLS and the cluster credential, both off by default
    (docs/security.md)."""

    tls: TlsConfig | None = None
    """TLS on every connection the component serves or makes; ``None``: plaintext."""
    cluster_token_file: Path | None = None
    """A file holding the cluster's shared secret. Servers then refuse the calls of EMs and
    schedulers that do not present it; EMs and schedulers present it. ``None``: no check."""
    require_group_credentials: bool = False
    """Storage (and the embedded cluster's storage): every job call must carry the credential
    of the job's resource group, its id and password; a caller sees and changes only its own
    group's jobs. Other services ignore it."""


@attrs.frozen
class RpcConfig:
    """How a client talks to one server."""

    default_deadline: float = attrs.field(default=DEFAULT_DEADLINE, validator=_positive_seconds)
    """Seconds a call may take when the caller passes no ``deadline``."""
    connection_pool_size: int = attrs.field(default=1, validator=_at_least_one)
    """HTTP/2 connections per channel, used round-robin; more than one avoids the single
    connection bottleneck under many concurrent calls (upstream's ``connection_pool_size``)."""
    retry: Backoff = RPC_RETRY_BACKOFF
    """The policy to pass as ``retry=`` to calls that are safe to repeat."""
    tls: TlsConfig | None = None
    """Connect with TLS (checking the server's certificate), or plaintext when ``None``."""
    metadata: tuple[tuple[str, str | bytes], ...] = ()
    """Sent with every call: the caller's credentials (``spider.rpc.auth``). Keys ending in
    ``-bin`` take bytes, the others printable ASCII str."""


@attrs.frozen
class ServerConfig:
    """How a server secures its connections and calls, the largest request it reads, and how
    it shuts down."""

    shutdown_grace: float = attrs.field(default=SHUTDOWN_GRACE, validator=_positive_seconds)
    """Seconds a stopping server waits to write a connection's GOAWAY to a client that does
    not read."""
    max_request_bytes: int = attrs.field(default=MAX_REQUEST_BYTES, validator=_at_least_one)
    """A larger request is answered RESOURCE_EXHAUSTED before its body is read."""
    tls: TlsConfig | None = None
    """Serve TLS (``cert`` and ``key`` required), or plaintext when ``None``."""
    auth: ClusterAuth | None = None
    """The check of the cluster credential before the handlers of guarded services."""
