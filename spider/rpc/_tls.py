"""SSL contexts for ``serve`` and ``connect_channel`` from a ``TlsConfig``.

Both sides speak TLS 1.2 or later and offer only HTTP/2 (ALPN ``h2``), as gRPC requires. A file
that cannot be read or a certificate that does not match its key is a ``ConfigError`` naming
the file, raised when the server starts or the channel opens, not at the first call.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from pathlib import Path

from spider.core.config import ConfigError
from spider.rpc._config import TlsConfig


def server_context(tls: TlsConfig) -> ssl.SSLContext:
    """The context a server presents ``tls.cert`` with; with ``require_client_cert``, clients
    must present a certificate that ``tls.ca`` signed."""
    if tls.cert is None or tls.key is None:
        raise ConfigError("security.tls: a server needs cert and key")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    _load(context, tls)
    context.verify_mode = ssl.CERT_REQUIRED if tls.require_client_cert else ssl.CERT_NONE
    return context


def client_context(tls: TlsConfig) -> ssl.SSLContext:
    """The context a client checks the server's certificate with (against ``tls.ca``, else the
    system's CAs), presenting ``tls.cert`` if given."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    _load(context, tls)
    return context


def _load(context: ssl.SSLContext, tls: TlsConfig) -> None:
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(["h2"])
    if tls.ca is not None:
        _read(tls.ca, "ca", lambda: context.load_verify_locations(cafile=tls.ca))
    if tls.cert is not None and tls.key is not None:
        cert, key = tls.cert, tls.key
        _read(cert, "cert/key", lambda: context.load_cert_chain(cert, key))


def _read(path: Path, key: str, load: Callable[[], None]) -> None:
    try:
        load()
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"security.tls.{key}: cannot use {path}: {exc}") from exc
