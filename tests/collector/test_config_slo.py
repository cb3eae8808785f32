"""`slo:` of a check and `availability:`: typed, validated, errors name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from collector.config import load_config
from collector.errors import ConfigError

CHECK = "{id: shop, probe: http, target: 'https://shop.example/'"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "collector.yaml"
    path.write_text("insecure: true\n" + text)
    return path


def test_slo_and_availability_load(tmp_path: Path) -> None:
    config = load_config(
        write(
            tmp_path,
            f"checks: [{CHECK}, slo: {{target: 99.9, window: 7d}}}}, {{id: b, probe: dns, target: b}}]\n"
            "availability: {partial_weight: 0.25}\n",
        )
    )
    assert (config.slos["shop"].target, config.slos["shop"].window) == (99.9, 7 * 86_400)
    assert "b" not in config.slos
    # The agents' CheckSpec has no trace of it.
    assert "slo" not in str(config.checks[0])
    assert config.availability.partial_weight == 0.25


@pytest.mark.parametrize(
    ("text", "key", "reason"),
    [
        (f"checks: [{CHECK}, slo: {{target: 100}}}}]\n", "checks[0].slo.target", "below 100"),
        (f"checks: [{CHECK}, slo: {{target: 0}}}}]\n", "checks[0].slo.target", "above 0"),
        (f"checks: [{CHECK}, slo: {{target: high}}}}]\n", "checks[0].slo.target", "expected float"),
        (f"checks: [{CHECK}, slo: {{window: 30d}}}}]\n", "checks[0].slo.target", "is required"),
        (f"checks: [{CHECK}, slo: {{target: 99, window: 10m}}}}]\n", "checks[0].slo.window", "at least 1h"),
        (f"checks: [{CHECK}, slo: {{target: 99, windwo: 1d}}}}]\n", "checks[0].slo.windwo", "unknown key"),
        (f"checks: [{CHECK}, slo: 99.9}}]\n", "checks[0].slo", "expected a mapping"),
        ("availability: {partial_weight: 2}\n", "availability.partial_weight", "between 0 and 1"),
    ],
)
def test_bad_config_names_file_key_and_reason(tmp_path: Path, text: str, key: str, reason: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert error.value.file == str(path)
    assert error.value.key == key
    assert reason in error.value.reason
