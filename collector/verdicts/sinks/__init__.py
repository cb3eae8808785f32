"""Notification sinks, one module per type; `make_sink` builds one from its `notify:` entry.

A sink only says which HTTP requests an event version becomes (`Sink.requests`); storing,
retrying, recording and never sending twice are the notifier's (collector.verdicts.notify).
"""

from __future__ import annotations

from collector.config import SECRET_SINKS, NotifyConfig, WebhookConfig, read_secret
from collector.verdicts.sinks.alertmanager import AlertmanagerSink
from collector.verdicts.sinks.base import Request, Sink, matches, severity
from collector.verdicts.sinks.opsgenie import OpsgenieSink
from collector.verdicts.sinks.pagerduty import PagerDutySink
from collector.verdicts.sinks.slack import SlackSink, slack_body
from collector.verdicts.sinks.webhook import WebhookSink, json_body

SINK_TYPES: dict[str, type[Sink]] = {
    "webhook": WebhookSink,
    "slack": SlackSink,
    "alertmanager": AlertmanagerSink,
    "pagerduty": PagerDutySink,
    "opsgenie": OpsgenieSink,
}


def make_sink(config: NotifyConfig | WebhookConfig) -> Sink:
    """A sink for its config entry; the secret is read now, from the environment or its file."""
    if isinstance(config, WebhookConfig):
        config = config.as_notify()
    secret = read_secret(config.key_env, config.key_file) if config.type in SECRET_SINKS else ""
    return SINK_TYPES[config.type](config, secret)


__all__ = ["SINK_TYPES", "Request", "Sink", "json_body", "make_sink", "matches", "severity", "slack_body"]
