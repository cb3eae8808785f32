"""`probe-collector classify`: proto3 JSON results in, events out; real subprocesses for the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from collector.cli import main
from tests.collector.verdicts.sim import Fault, Network, check_yaml, to_proto_json

FOUR = {"it": 2, "fr": 2, "de": 2, "us": 2}


def _write(tmp_path: Path, network: Network, camel_every: int = 2, **verdict: Any) -> tuple[Path, Path]:
    checks = tmp_path / "checks.yaml"
    checks.write_text(yaml.safe_dump(check_yaml(network.checks, network.interval, **verdict)))
    results = tmp_path / "results.jsonl"
    # Both field spellings in one file: camelCase (proto3 JSON) and the proto field names.
    lines = [to_proto_json(r, camel=i % camel_every == 0) for i, r in enumerate(network.results())]
    results.write_text("\n".join(lines) + "\n")
    return checks, results


def _classify(*args: str) -> subprocess.CompletedProcess[str]:
    cli = Path(sys.executable).parent / "probe-collector"
    return subprocess.run(
        [str(cli), "classify", *args], capture_output=True, text=True, timeout=120, check=False
    )


def _run_json(checks: Path, results: Path) -> list[dict[str, Any]]:
    proc = _classify("--checks", str(checks), "--results", str(results), "--json")
    assert proc.returncode == 0, proc.stderr
    return [json.loads(line) for line in proc.stdout.splitlines()]


def test_subprocess_regional_outage_json(tmp_path: Path) -> None:
    network = Network(
        FOUR, faults=[Fault(60, 150, regions=("it", "fr"), cls="tls_cert_expired", host="static.example")]
    )
    events = _run_json(*_write(tmp_path, network))
    assert [
        (e["version"], e["status"], e["scope"], e["regions"], e["closed_at"] is not None) for e in events
    ] == [
        (1, "outage", "regional", ["fr", "it"], False),
        (2, "outage", "regional", ["fr", "it"], True),
    ]
    first = events[0]
    assert set(first) == {
        "id",
        "version",
        "kind",
        "check",
        "agent",
        "status",
        "scope",
        "regions",
        "cause",
        "opened_at",
        "updated_at",
        "closed_at",
        "peak_status",
        "peak_scope",
        "peak_regions",
        "recovering_regions",
    }
    assert (first["peak_status"], first["peak_scope"], first["peak_regions"]) == (
        "outage",
        "regional",
        ["fr", "it"],
    )
    assert first["recovering_regions"] == []
    assert first["cause"]["class"] == "tls_cert_expired"
    assert first["cause"]["host"] == "static.example"
    assert first["cause"]["error"]
    assert first["opened_at"].endswith("Z")
    assert events[1]["id"] == first["id"]


def test_subprocess_output_is_deterministic(tmp_path: Path) -> None:
    network = Network(
        FOUR, checks=("web", "api"), faults=[Fault(60, 150), Fault(90, 200, checks=("api",), regions=("us",))]
    )
    checks, results = _write(tmp_path, network)
    first = _classify("--checks", str(checks), "--results", str(results))
    second = _classify("--checks", str(checks), "--results", str(results))
    assert first.returncode == 0, first.stderr
    assert first.stdout == second.stdout
    assert "opened  check web v1: outage global [de,fr,it,us] cause tcp_refused" in first.stdout


def test_subprocess_bad_json_line_exits_2_naming_file_and_line(tmp_path: Path) -> None:
    checks, results = _write(tmp_path, Network(FOUR, duration=30))
    lines = results.read_text().splitlines()
    lines.insert(3, "{not json")
    results.write_text("\n".join(lines) + "\n")
    proc = _classify("--checks", str(checks), "--results", str(results))
    assert proc.returncode == 2
    assert f"{results}: line 4: invalid JSON" in proc.stderr


def test_enum_names_and_snake_case_are_accepted(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    checks = tmp_path / "checks.yaml"
    checks.write_text(yaml.safe_dump(check_yaml(["web"], 10)))
    lines = []
    for t in range(0, 100, 10):
        for region in ("it", "fr"):
            failing = region == "it" and t >= 30
            lines.append(
                json.dumps(
                    {
                        "check_id": "web",
                        "agentId": f"{region}-1",
                        "region": region,
                        "seq": t,
                        "startedAt": f"2027-01-15T08:00:{t // 2 + 1:02d}Z",
                        "outcome": "OUTCOME_FAILED" if failing else "OUTCOME_SUCCESS",
                        "failureClass": "DNS_NXDOMAIN" if failing else "NONE",
                        "failure_host": "web.example" if failing else "",
                    }
                )
            )
    results = tmp_path / "results.jsonl"
    results.write_text("\n".join(lines) + "\n")
    assert (
        main(
            [
                "classify",
                "--checks",
                str(checks),
                "--results",
                str(results),
                "--json",
                "--evaluate-every",
                "5s",
            ]
        )
        == 0
    )
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert events[0]["cause"] == {"class": "dns_nxdomain", "host": "web.example", "error": ""}
    assert events[0]["regions"] == ["it"]


@pytest.mark.parametrize(
    ("checks_text", "result_line", "message"),
    [
        ("checks: []\n", None, "checks.yaml: checks: is empty"),
        ("nope: 1\n", None, "checks.yaml: checks: expected a mapping with a top-level checks: list"),
        (
            "checks:\n  - {id: web, probe: smtp, target: x}\n",
            None,
            "checks.yaml: checks[0].probe: unknown probe",
        ),
        (
            None,
            '{"checkId": "web", "agentId": "a", "region": "it", "outcome": "NOPE"}',
            "results.jsonl: line 1:",
        ),
        (
            None,
            '{"checkId": "web", "agentId": "a", "startedAt": "2027-01-01T00:00:00Z"}',
            "results.jsonl: line 1.region: is required",
        ),
        (None, "[1, 2]", "results.jsonl: line 1: expected a JSON object"),
    ],
)
def test_bad_input_exits_2_with_file_key_reason(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    checks_text: str | None,
    result_line: str | None,
    message: str,
) -> None:
    checks = tmp_path / "checks.yaml"
    checks.write_text(checks_text or yaml.safe_dump(check_yaml(["web"], 10)))
    results = tmp_path / "results.jsonl"
    results.write_text((result_line or to_proto_json(Network(FOUR, duration=10).results()[0])) + "\n")
    assert main(["classify", "--checks", str(checks), "--results", str(results)]) == 2
    assert message in capsys.readouterr().err


def test_missing_results_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    checks = tmp_path / "checks.yaml"
    checks.write_text(yaml.safe_dump(check_yaml(["web"], 10)))
    assert main(["classify", "--checks", str(checks), "--results", str(tmp_path / "none.jsonl")]) == 2
    assert "none.jsonl: -: cannot read" in capsys.readouterr().err
