"""The faults no built-in scenario uses, through the whole chain: served by the lab, classified
by the agents' probes, concluded by the collector's verdicts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.test_lab import assert_cleaned_up, json_lines, run_lab

pytestmark = pytest.mark.e2e

SCENARIO = """
name: every-other-fault
interval: 2s
duration: 24s
regions: {it: 1, fr: 1, us: 1}
targets:
  wrong:   {kind: https}
  early:   {kind: https}
  rogue:   {kind: https}
  hole:    {kind: https}
  sluggish: {kind: http}
checks:
  - {id: wrong-tls, probe: tls, target: wrong}
  - {id: early-tls, probe: tls, target: early}
  - {id: rogue-tls, probe: tls, target: rogue}
  - {id: hole-http, probe: http, target: hole}
  - {id: sluggish-http, probe: http, target: sluggish}
faults:
  - {at: 4s, until: 16s, target: wrong, regions: [it], fault: cert_wrong_host}
  - {at: 4s, until: 16s, target: early, regions: [fr], fault: cert_not_yet_valid}
  - {at: 4s, until: 16s, target: rogue, regions: [us], fault: cert_untrusted}
  - {at: 4s, until: 16s, target: hole, regions: [it, fr], fault: blackhole}
  - {at: 4s, until: 16s, target: sluggish, regions: [fr], fault: "slow:5000"}
strict: true
expect:
  - {check: wrong-tls, status: outage, scope: regional, regions: [it], cause: tls_hostname_mismatch,
     first: true, versions: 2}
  - {check: early-tls, status: outage, scope: regional, regions: [fr], cause: tls_cert_not_yet_valid,
     first: true, versions: 2}
  - {check: rogue-tls, status: outage, scope: regional, regions: [us], cause: tls_untrusted,
     first: true, versions: 2}
  # A blackhole's results land a timeout late, one agent per region: the second region may still
  # join a version later (known gap: the wait for unheard regions counts from the first failure).
  - {check: hole-http, status: outage, scope: regional, regions: [fr, it]}
  - {check: sluggish-http, status: outage, scope: regional, regions: [fr], first: true, versions: 2}
"""


def test_certificate_blackhole_and_slow_faults(tmp_path: Path) -> None:
    scenario = tmp_path / "every-other-fault.yaml"
    scenario.write_text(SCENARIO)
    done = run_lab(str(scenario), "--json", "--speed", "3", cwd=tmp_path)
    lines = json_lines(done.stdout)
    expect = next((line for line in lines if line["type"] == "expect"), None)
    assert expect is not None, done.stderr[-3000:]
    unmet = [e for e in expect["entries"] if not e["met"]]
    assert unmet == [], json.dumps(unmet, indent=1)
    assert done.returncode == 0
    start = next(line for line in lines if line["type"] == "start")
    assert_cleaned_up(start["workdir"], start["port"])
