"""`notify:` sinks in collector.yaml: the old `webhooks:` key still works (same store identity,
so an upgrade re-sends nothing), secrets come only from the environment or a file, and every
bad entry is named by file, key and reason. The match filter picks events as documented."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from collector.config import MatchConfig, NotifyConfig, load_config
from collector.errors import ConfigError
from collector.verdicts import Cause, Event
from collector.verdicts.notify import sink_id
from collector.verdicts.sinks import matches


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "collector.yaml"
    path.write_text("insecure: true\n" + text)
    return path


def test_old_webhooks_key_becomes_notify_with_the_same_identity(tmp_path: Path) -> None:
    config = load_config(
        write(
            tmp_path,
            "webhooks: [{url: 'http://h/json'}, {url: 'http://h/slack', format: slack}]\n"
            "notify: [{type: alertmanager, url: 'http://am:9093', resend: 30s}]\n",
        )
    )
    assert [(s.type, s.url) for s in config.notify] == [
        ("alertmanager", "http://am:9093"),
        ("webhook", "http://h/json"),
        ("slack", "http://h/slack"),
    ]
    assert config.notify[0].resend == 30.0
    # the identity the store knew the webhook by before `notify:` existed
    assert sink_id(config.notify[1]) == hashlib.sha256(b"json http://h/json").hexdigest()[:16]


def test_secrets_from_env_or_file_and_default_urls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PD_KEY", "abc")
    (tmp_path / "og.key").write_text("k\n")
    config = load_config(
        write(tmp_path, "notify: [{type: pagerduty, key_env: PD_KEY}, {type: opsgenie, key_file: og.key}]\n")
    )
    pd, og = config.notify
    assert pd.url == "https://events.pagerduty.com/v2/enqueue"
    assert (og.url, og.key_file) == ("https://api.opsgenie.com", str(tmp_path / "og.key"))


@pytest.mark.parametrize(
    ("text", "key", "reason"),
    [
        ("notify: [{type: pager}]\n", "notify[0].type", "unknown sink type 'pager'"),
        ("notify: [{type: alertmanager}]\n", "notify[0].url", "is required for a alertmanager sink"),
        ("notify: [{type: webhook, url: 'ftp://x'}]\n", "notify[0].url", "expected an http(s)://"),
        ("notify: [{type: pagerduty, routing_key: abc}]\n", "notify[0].routing_key", "never read from the config"),
        ("notify: [{type: opsgenie, api_key: abc}]\n", "notify[0].api_key", "never read from the config"),
        ("notify: [{type: pagerduty}]\n", "notify[0].key_env", "exactly one of key_env or key_file"),
        ("notify: [{type: pagerduty, key_env: NO_SUCH_VAR_X}]\n", "notify[0].key_env", "NO_SUCH_VAR_X is not set"),
        ("notify: [{type: opsgenie, key_file: missing.key}]\n", "notify[0].key_file", "cannot read"),
        ("notify: [{type: slack, url: 'http://x', key_env: A}]\n", "notify[0].key_env", "takes no key"),
        ("notify: [{type: webhook, url: 'http://x', match: {statuses: [down]}}]\n", "notify[0].match.statuses[0]", "unknown 'down'"),
        ("notify: [{type: webhook, url: 'http://x', match: {scopes: [world]}}]\n", "notify[0].match.scopes[0]", "unknown 'world'"),
        ("notify: [{type: webhook, url: 'http://x', match: {min_severity: high}}]\n", "notify[0].match.min_severity", "unknown 'high'"),
        ("notify: [{type: webhook, url: 'http://x', match: {check: a}}]\n", "notify[0].match.check", "unknown key"),
        ("notify: [{type: alertmanager, url: 'http://x', resend: 100ms}]\n", "notify[0].resend", "at least 1s"),
        ("notify: {type: webhook}\n", "notify", "expected a list"),
    ],
)  # fmt: skip
def test_bad_notify_entries_name_file_key_and_reason(
    tmp_path: Path, text: str, key: str, reason: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert (info.value.file, info.value.key) == (str(path), key)
    assert reason in info.value.reason


def _event(check: str, status: str, scope: str, kind: str = "check") -> Event:
    return Event("e", 1, kind, check, status, scope, ("it",), Cause("timeout", "", ""), 0.0, 0.0)


def test_match_by_glob_status_scope_and_min_severity() -> None:
    shop_outage = _event("shop-page", "outage", "global")
    api_partial = _event("api", "partial", "regional")
    vantage = _event("", "impaired", "agent", kind="vantage")
    assert matches(MatchConfig(), vantage)
    assert matches(MatchConfig(checks=("shop-*",)), shop_outage)
    assert not matches(MatchConfig(checks=("shop-*",)), api_partial)
    assert not matches(MatchConfig(checks=("shop-*",)), vantage)
    assert matches(MatchConfig(checks=("*",)), vantage)
    assert not matches(MatchConfig(statuses=("outage",)), api_partial)
    assert matches(MatchConfig(scopes=("regional",)), api_partial)
    assert matches(MatchConfig(min_severity="error"), api_partial)
    assert not matches(MatchConfig(min_severity="critical"), api_partial)
    assert not matches(MatchConfig(min_severity="error"), vantage)
    assert NotifyConfig().type == "webhook"
