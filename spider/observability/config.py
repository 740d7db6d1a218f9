"""The ``metrics`` block every service's YAML file may hold::

metrics: {host: 127.0.0.1, port: 9464}    # port 0: a free port; no block: off
"""

from __future__ import annotations

import attrs


def _valid_port(
    instance: object, attribute: attrs.Attribute[int | None], value: int | None
) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 65535:
        raise ValueError(f"metrics.port must be an integer from 0 to 65535, got {value!r}")


@attrs.frozen
class MetricsConfig:
    """Where a service serves ``/metrics``, ``/healthz`` and ``/readyz``."""

    host: str = "127.0.0.1"
    """Loopback by default: the metrics name jobs and machines, so exposing them is a choice."""
    port: int | None = attrs.field(default=None, validator=_valid_port)
    """``None``: no HTTP endpoint (the default of a service's file); 0: a free port."""

    @property
    def enabled(self) -> bool:
        return self.port is not None
