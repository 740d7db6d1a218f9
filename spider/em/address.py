"""The address an EM registers with storage (``RegisterExecutionManager.ip_address``), which
``spider status`` lists so that an operator can tell the machines apart.

Storage takes an IP address. Unless one is configured (``advertised_host``, an address or a
name resolved here), it is the local address of this machine's route to storage: the address
storage sees the EM's connections come from, whatever interfaces the machine has. Finding it
sends nothing (a UDP socket's ``connect`` only picks the route).
"""

from __future__ import annotations

import ipaddress
import socket

from spider.core.config import ConfigError
from spider.rpc import Endpoint


def advertised_address(configured: str | None, storage: Endpoint) -> str:
    """The IP address to register: ``configured`` (resolved if a name), else the address this
    machine reaches ``storage`` from. ``ConfigError`` if ``configured`` does not resolve.
    Blocking (name resolution): the EM calls it once, at start."""
    if configured:
        return _resolve(configured)
    try:
        family, _, _, _, address = socket.getaddrinfo(
            storage.host, storage.port, type=socket.SOCK_DGRAM
        )[0]
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.connect(address)
            local: str = probe.getsockname()[0]
    except OSError:
        # Storage's name does not resolve yet (the EM retries registering until it does): the
        # machine's own name is the next best thing.
        return _resolve(socket.gethostname(), fallback="127.0.0.1")
    return local


def _resolve(host: str, *, fallback: str | None = None) -> str:
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    try:
        resolved = str(socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)[0][4][0])
    except OSError as exc:
        if fallback is not None:
            return fallback
        raise ConfigError(
            f"advertised_host: {host!r} is neither an IP address nor a name that resolves "
            f"({exc.strerror or exc})"
        ) from exc
    return resolved
