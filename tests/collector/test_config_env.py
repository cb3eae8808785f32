"""PROBENET_STORE_URL overrides store.url: how the Helm chart passes a ClickHouse password from a Secret."""

from __future__ import annotations

from pathlib import Path

import pytest

from collector.config import QUERY_URL_ENV, STORE_URL_ENV, load_config
from collector.errors import ConfigError

SERVER_URL = "http://probenet:s3cret@clickhouse:8123/probenet"


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "collector.yaml"
    path.write_text(text)
    return path


def test_env_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(STORE_URL_ENV, SERVER_URL)
    path = _write(tmp_path, "insecure: true\nstore: {url: chdb:///data/store, ttl_days: 7}\n")
    config = load_config(path)
    assert config.store.url == SERVER_URL
    assert config.store.ttl_days == 7


def test_env_supplies_a_missing_store_section(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(STORE_URL_ENV, SERVER_URL)
    assert load_config(_write(tmp_path, "insecure: true\n")).store.url == SERVER_URL


def test_empty_env_keeps_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(STORE_URL_ENV, "")
    config = load_config(_write(tmp_path, "insecure: true\nstore: {url: chdb:///data/store}\n"))
    assert config.store.url == "chdb:///data/store"


def test_env_url_is_validated_like_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(STORE_URL_ENV, "mysql://nope")
    with pytest.raises(ConfigError) as info:
        load_config(_write(tmp_path, "insecure: true\n"))
    assert info.value.key == "store.url"


def test_store_must_stay_a_mapping(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(STORE_URL_ENV, SERVER_URL)
    with pytest.raises(ConfigError) as info:
        load_config(_write(tmp_path, "insecure: true\nstore: [1]\n"))
    assert info.value.key == "store"


def test_query_url_env_overrides_the_file_and_is_validated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reader = "http://probenet_query:pw@ch.example:8123/probenet"
    monkeypatch.setenv(STORE_URL_ENV, SERVER_URL)
    monkeypatch.setenv(QUERY_URL_ENV, reader)
    config = load_config(_write(tmp_path, "insecure: true\nstore: {query_url: http://other:8123/x}\n"))
    assert config.store.query_url == reader
    monkeypatch.setenv(STORE_URL_ENV, "")  # an embedded store has no query user
    with pytest.raises(ConfigError) as info:
        load_config(_write(tmp_path, "insecure: true\n"))
    assert info.value.key == "store.query_url"
