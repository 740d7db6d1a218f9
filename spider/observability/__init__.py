"""What an operator sees of a running service: Prometheus metrics and health endpoints over
HTTP (docs/operations.md#metrics-and-health)."""

from spider.observability.config import MetricsConfig
from spider.observability.http import Answer, HttpRequest, Route, serve_http
from spider.observability.readiness import READINESS, Readiness

__all__ = [
    "READINESS",
    "Answer",
    "HttpRequest",
    "MetricsConfig",
    "Readiness",
    "Route",
    "serve_http",
]
