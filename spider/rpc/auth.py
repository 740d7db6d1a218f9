"""The cluster credential: a shared secret that EMs and schedulers send with every call, and
the check servers make before the handlers of guarded services (docs/security.md).

The check costs one metadata lookup and one constant-time comparison per guarded call: the
expected token is encoded once, and whether a route is guarded is decided once per route when
``serve`` builds its route table, so unguarded routes pay nothing.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable, Collection, Mapping
from pathlib import Path
from typing import Any, Final

import attrs

from spider.core.config import ConfigError
from spider.rpc._config import SecurityConfig
from spider.rpc._log_limit import PeerLogLimit, left_out_note
from spider.rpc._tls import client_context, server_context
from spider.rpc.errors import UnauthenticatedError

LOGGER: Final = logging.getLogger("spider.rpc")

CLUSTER_TOKEN_HEADER: Final = "spider-cluster-token"
"""The call metadata key that carries the cluster credential."""

GROUP_ID_HEADER: Final = "spider-resource-group"
"""The call metadata key that names the caller's resource group (its id, in decimal)."""
GROUP_PASSWORD_HEADER: Final = "spider-resource-group-password-bin"
"""The call metadata key that carries the group's password (binary metadata)."""

MAX_TOKEN_BYTES: Final = 4096
"""A token file larger than this is a mistake (the wrong file), not a secret."""

_StreamHandler = Callable[[Any], Awaitable[None]]


def read_cluster_token(path: Path) -> str:
    """The secret in ``path`` (surrounding whitespace dropped): printable ASCII, not empty.

    ``ConfigError`` names the file when it cannot be read or holds no usable secret.
    """
    try:
        raw = path.read_bytes()[: MAX_TOKEN_BYTES + 1]
    except OSError as exc:
        raise ConfigError(
            f"security.cluster_token_file: cannot read {path}: {exc.strerror}"
        ) from exc
    token = raw.strip()
    if not token or len(raw) > MAX_TOKEN_BYTES:
        raise ConfigError(
            f"security.cluster_token_file: {path} must hold one secret of 1 to "
            f"{MAX_TOKEN_BYTES} bytes (e.g. from `openssl rand -hex 32`)"
        )
    if not all(0x21 <= byte <= 0x7E for byte in token):
        raise ConfigError(
            f"security.cluster_token_file: {path} must hold printable ASCII without spaces "
            "(e.g. from `openssl rand -hex 32`), as gRPC metadata carries it"
        )
    return token.decode("ascii")


def cluster_metadata(security: SecurityConfig) -> tuple[tuple[str, str], ...]:
    """What an EM or scheduler sends with every call: the cluster credential, if configured."""
    if security.cluster_token_file is None:
        return ()
    return ((CLUSTER_TOKEN_HEADER, read_cluster_token(security.cluster_token_file)),)


def group_metadata(password: bytes, group_id: int | None) -> tuple[tuple[str, str | bytes], ...]:
    """What a client sends with job calls to a storage that requires group credentials: the
    group's password, and the group's id if the client names the group it acts for."""
    named = () if group_id is None else ((GROUP_ID_HEADER, str(group_id)),)
    return ((GROUP_PASSWORD_HEADER, password), *named)


def cluster_auth(
    security: SecurityConfig, open_services: Collection[str] = ()
) -> ClusterAuth | None:
    """The check a server makes, if ``security`` names a cluster token; ``open_services``
    (``package.Service`` names, e.g. ``storage.JobOrchestrationService``, or single routes,
    ``/package.Service/Method``) are left to clients."""
    if security.cluster_token_file is None:
        return None
    return ClusterAuth(read_cluster_token(security.cluster_token_file), frozenset(open_services))


@attrs.frozen
class ClusterAuth:
    """Guards every service but ``open_services`` (services, or single ``/package.Service/Method``
    routes) with the cluster credential ``token``."""

    token: str = attrs.field(repr=False)
    open_services: frozenset[str] = frozenset()
    _expected: bytes = attrs.field(init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        if not self.token:
            raise ValueError("a cluster token must not be empty")
        object.__setattr__(self, "_expected", self.token.encode("ascii"))

    def guards(self, route: str) -> bool:
        """Whether calls of ``route`` (``/package.Service/Method``) need the credential."""
        service = route.removeprefix("/").partition("/")[0]
        return service not in self.open_services and route not in self.open_services

    def accepts(self, metadata: Mapping[str, Any] | None) -> bool:
        """Whether ``metadata`` (a call's, as ``serve`` decoded it) carries the token."""
        presented = None if metadata is None else metadata.get(CLUSTER_TOKEN_HEADER)
        return isinstance(presented, str) and hmac.compare_digest(
            presented.encode("utf-8", "replace"), self._expected
        )

    def refusal(
        self,
        route: str,
        metadata: Mapping[str, Any] | None,
        peer: object,
        refusals: PeerLogLimit | None = None,
    ) -> UnauthenticatedError:
        """The UNAUTHENTICATED answer to a call ``accepts`` refused, logged as one line (within
        ``refusals``' limit, if given)."""
        presented = None if metadata is None else metadata.get(CLUSTER_TOKEN_HEADER)
        reason = "no cluster credential" if presented is None else "a wrong cluster credential"
        left_out = 0 if refusals is None else refusals.admit(peer)
        if left_out is not None:  # at most a few lines per client host a minute
            LOGGER.warning(
                "refused %s from %s: %s%s",
                route,
                peer,
                reason,
                left_out_note(left_out),
                extra={
                    "rpc_method": route,
                    "rpc_peer": peer,
                    "rpc_status": "UNAUTHENTICATED",
                    "rpc_lines_left_out": left_out,
                },
            )
        return UnauthenticatedError(
            f"{route} needs the cluster credential ({CLUSTER_TOKEN_HEADER} metadata): only "
            f"execution managers and schedulers call it; {reason} was sent",
            method=route,
        )

    def guarded(
        self, route: str, handler: _StreamHandler, refusals: PeerLogLimit | None = None
    ) -> _StreamHandler:
        """``handler`` behind the check, if ``route`` is guarded; else ``handler`` itself."""
        if not self.guards(route):
            return handler

        async def check_then_handle(call: Any) -> None:
            # Checked before the request is read: a refused call costs no decoding.
            if not self.accepts(call.metadata):
                raise self.refusal(route, call.metadata, call.peer, refusals)
            await handler(call)

        return check_then_handle


def check_security(security: SecurityConfig, *, serves: bool) -> None:
    """Read every file ``security`` names, as a component starting with it will: a
    ``ConfigError`` naming the file now, at startup, instead of once the service runs.
    ``serves``: the component also serves (a server's TLS needs a certificate)."""
    cluster_metadata(security)
    if security.tls is not None:
        client_context(security.tls)
        if serves:
            server_context(security.tls)
