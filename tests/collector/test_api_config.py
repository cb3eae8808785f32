"""The API must not serve the store to the network without a bearer token."""

from __future__ import annotations

from pathlib import Path

import pytest

from collector.config import API_TOKEN_ENV, is_loopback_listen, load_config
from collector.errors import ConfigError


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "collector.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("listen", ["0.0.0.0:8080", ":8080", "10.1.2.3:8080", "[::]:8080", "api.example:80"])
def test_non_loopback_api_without_token_is_refused(
    tmp_path: Path, listen: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(API_TOKEN_ENV, raising=False)
    path = _write(tmp_path, f"insecure: true\napi: {{listen: '{listen}'}}\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.file == str(path)
    assert info.value.key == "api.token"
    assert "not a loopback address" in info.value.reason
    assert str(path) in str(info.value)


@pytest.mark.parametrize("listen", ["127.0.0.1:8080", "localhost:0", "[::1]:8080", "127.0.0.5:1"])
def test_loopback_api_needs_no_token(tmp_path: Path, listen: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(API_TOKEN_ENV, raising=False)
    config = load_config(_write(tmp_path, f"insecure: true\napi: {{listen: '{listen}'}}\n"))
    assert config.api.token == ""
    assert is_loopback_listen(listen)


def test_non_loopback_api_with_token_starts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(API_TOKEN_ENV, raising=False)
    config = load_config(_write(tmp_path, "insecure: true\napi: {listen: '0.0.0.0:8080', token: s3cret}\n"))
    assert config.api.token == "s3cret"


def test_token_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(API_TOKEN_ENV, "from-secret")
    config = load_config(_write(tmp_path, "insecure: true\napi: {listen: '0.0.0.0:8080'}\n"))
    assert config.api.token == "from-secret"


def test_default_api_listen_is_loopback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(API_TOKEN_ENV, raising=False)
    config = load_config(_write(tmp_path, "insecure: true\n"))
    assert is_loopback_listen(config.api.listen)
