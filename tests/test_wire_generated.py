"""The checked-in wire code must be exactly what proto/generate.py produces from the .proto files."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_generated_wire_code_is_fresh(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, str(ROOT / "proto" / "generate.py"), "--out", str(tmp_path)],
        check=True,
        capture_output=True,
    )
    fresh = {p.name: p.read_bytes() for p in (tmp_path / "probenet" / "v1").iterdir()}
    committed = {p.name: p.read_bytes() for p in (ROOT / "probenet" / "v1").iterdir() if p.is_file()}
    assert sorted(fresh) == sorted(committed), "file set differs: run python proto/generate.py"
    stale = [name for name in fresh if fresh[name] != committed[name]]
    assert not stale, f"stale generated files {stale}: run python proto/generate.py"


def test_agent_and_collector_share_only_the_wire_code() -> None:
    for package, other in (("probe_agent", "collector"), ("collector", "probe_agent")):
        for path in (ROOT / package).rglob("*.py"):
            text = path.read_text()
            assert f"from {other}" not in text and f"import {other}" not in text, f"{path} imports {other}"
