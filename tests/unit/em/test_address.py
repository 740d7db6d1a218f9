"""``advertised_address``: the configured address, resolved, else the route to storage."""

from __future__ import annotations

import pytest

from spider.core.config import ConfigError
from spider.em.address import advertised_address
from spider.rpc import Endpoint

STORAGE = Endpoint("127.0.0.1", 50051)


def test_by_default_the_address_storage_is_reached_from() -> None:
    # Storage on loopback is reached from loopback; no packet is sent to find it.
    assert advertised_address(None, STORAGE) == "127.0.0.1"
    assert advertised_address(None, Endpoint("::1", 50051)) == "::1"


def test_a_configured_address_or_name() -> None:
    assert advertised_address("10.1.2.3", STORAGE) == "10.1.2.3"
    assert advertised_address("2001:db8::7", STORAGE) == "2001:db8::7"
    assert advertised_address("localhost", STORAGE) in ("127.0.0.1", "::1")


def test_a_name_that_does_not_resolve_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"advertised_host: 'nowhere\.invalid'"):
        advertised_address("nowhere.invalid", STORAGE)


def test_a_storage_name_that_does_not_resolve_yet_falls_back() -> None:
    # The EM retries registering until storage resolves; the address must not stop it.
    assert advertised_address(None, Endpoint("storage.invalid", 50051))
