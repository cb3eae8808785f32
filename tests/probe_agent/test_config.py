"""Agent config: every bad-config message names the file, the key and the reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from probe_agent.config import DEFAULT_SHUTDOWN_GRACE_S, load_config
from probe_agent.errors import ConfigError

GOOD = """
agent_id: it-1
region: it
collector: 127.0.0.1:4317
insecure: true
spool: {dir: spool, max_results: 100}
checks:
  - {id: shop, probe: http, target: "https://shop.test/", interval: 2s, timeout: 500ms}
  - {id: api, probe: http, target: "https://api.test/", http: {valid_status_codes: [200, 204]}}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "agent.yaml"
    path.write_text(text)
    return path


def test_good_config_loads_with_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, GOOD))
    assert (config.agent_id, config.region, config.spool.max_results) == ("it-1", "it", 100)
    shop, api = config.checks
    assert shop.interval.ToMilliseconds() == 2000 and shop.timeout.ToMilliseconds() == 500
    assert api.interval.ToMilliseconds() == 30_000 and api.timeout.ToMilliseconds() == 10_000
    assert list(api.http.valid_status_codes) == [200, 204]


def test_a_fixed_phase_is_read_and_defaults_to_none(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, GOOD)).phase is None
    fixed = load_config(write(tmp_path, "agent_id: a\nregion: it\ninsecure: true\nphase: 0.25\n"))
    assert fixed.phase == 0.25


def test_flags_override_the_file(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, GOOD), {"region": "fr", "agent_id": "fr-9", "collector": None})
    assert (config.agent_id, config.region, config.collector) == ("fr-9", "fr", "127.0.0.1:4317")


def test_shutdown_grace_defaults_accepts_zero_and_takes_the_flag(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, GOOD)).shutdown_grace == DEFAULT_SHUTDOWN_GRACE_S
    assert load_config(write(tmp_path, GOOD + "shutdown_grace: 0\n")).shutdown_grace == 0.0
    flagged = load_config(write(tmp_path, GOOD + "shutdown_grace: 1m\n"), {"shutdown_grace": "25s"})
    assert flagged.shutdown_grace == 25.0


@pytest.mark.parametrize(
    ("text", "key", "reason"),
    [
        ("region: it\ninsecure: true\n", "agent_id", "is required"),
        ("agent_id: a\nregion: it\ninsecure: true\ncolector: x\n", "colector", "unknown key"),
        ("agent_id: a\nregion: it\n", "tls", "ca, cert and key are required"),
        ("agent_id: a\nregion: it\ninsecure: yes please\n", "insecure", "expected bool"),
        ("agent_id: a\nregion: it\ninsecure: true\nbatch_size: 0\n", "batch_size", "at least 1"),
        (
            "agent_id: a\nregion: it\ninsecure: true\nshutdown_grace: soon\n",
            "shutdown_grace",
            "expected a duration",
        ),
        ("agent_id: a\nregion: it\ninsecure: true\nshutdown_grace: -5\n", "shutdown_grace", "zero or more"),
        ("agent_id: a\nregion: it\ninsecure: true\nspool: {dir: 5}\n", "spool.dir", "expected str"),
        ("agent_id: a\nregion: it\ninsecure: true\nspool: {size: 5}\n", "spool.size", "unknown key"),
        (
            "agent_id: a\nregion: it\ninsecure: true\nspool: {max_bytes: 4096}\n",
            "spool.max_bytes",
            "at least 1048576",
        ),
        (
            "agent_id: a\nregion: it\ninsecure: true\nspool: {max_results: 0}\n",
            "spool.max_results",
            "at least 1",
        ),
        (f"agent_id: {'a' * 129}\nregion: it\ninsecure: true\n", "agent_id", "longer than 128 bytes"),
        (
            f"agent_id: a\nregion: it\ninsecure: true\nchecks: [{{id: {'c' * 129}, probe: http, target: x}}]\n",
            "checks[0].id",
            "longer than 128 bytes",
        ),
        ("agent_id: a\nregion: it\ninsecure: true\nchecks: {}\n", "checks", "expected a list"),
        (
            "agent_id: a\nregion: it\ninsecure: true\nchecks: [{probe: http, target: x}]\n",
            "checks[0].id",
            "is required",
        ),
        (
            "agent_id: a\nregion: it\ninsecure: true\nchecks: [{id: a, probe: ftp, target: x}]\n",
            "checks[0].probe",
            "unknown probe 'ftp'",
        ),
        (
            "agent_id: a\nregion: it\ninsecure: true\nchecks: [{id: a, probe: http}]\n",
            "checks[0].target",
            "is required",
        ),
        (
            "agent_id: a\nregion: it\ninsecure: true\nchecks: [{id: a, probe: http, target: x, interval: soon}]\n",
            "checks[0].interval",
            "expected a duration",
        ),
        (
            "agent_id: a\nregion: it\ninsecure: true\nchecks: [{id: a, probe: http, target: x, interval: 1s, "
            "timeout: 2s}]\n",
            "checks[0].timeout",
            "must not exceed the interval",
        ),
        (
            "agent_id: a\nregion: it\ninsecure: true\nchecks: [{id: a, probe: http, target: x, bogus: 1}]\n",
            "checks[0]",
            "bogus",
        ),
        (
            "agent_id: a\nregion: it\ninsecure: true\nchecks: [{id: a, probe: http, target: x}, "
            "{id: a, probe: http, target: y}]\n",
            "checks[1].id",
            "duplicate check id",
        ),
        ("agent_id: a\nregion: it\ninsecure: true\nphase: 1.5\n", "phase", "expected a number in [0, 1)"),
        ("agent_id: a\nregion: it\ninsecure: true\nphase: soon\n", "phase", "expected a number in [0, 1)"),
        ("agent_id: [a\n", "-", "invalid YAML"),
        ("- a\n- b\n", "-", "top level must be a mapping"),
    ],
)
def test_bad_config_names_file_key_and_reason(tmp_path: Path, text: str, key: str, reason: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.file == str(path)
    assert info.value.key == key
    assert reason in info.value.reason
    assert str(path) in str(info.value)


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "nope.yaml")
