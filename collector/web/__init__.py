"""The HTTP API: `base` (state, JSON answers and errors, the bearer-token check), one module per
route group (query, status with its per-evaluation cache, events, agents and checks, metrics, the
status page and its assets in statuspage/), and `api.make_app`, which puts them together."""

from collector.web.api import make_app
from collector.web.base import ApiState, to_json_value
from collector.web.metrics import CollectorMetrics

__all__ = ["ApiState", "CollectorMetrics", "make_app", "to_json_value"]
