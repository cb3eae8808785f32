"""The Dockerfile the chart's image is built from, checked by reading it (no Docker engine in CI)."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Stage:
    base: str
    name: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def args(self, instruction: str) -> list[str]:
        return [a for i, a in self.instructions if i == instruction]


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined and comments dropped."""
    logical: list[str] = []
    pending = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        logical.append(pending + stripped)
        pending = ""
    assert not pending, "Dockerfile ends inside a continuation"
    pairs = []
    for line in logical:
        instruction, _, rest = line.partition(" ")
        pairs.append((instruction.upper(), rest.strip()))
    return pairs


def parse(text: str) -> tuple[dict[str, str], list[Stage]]:
    """Global ARG defaults and the stages in order."""
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for instruction, rest in instructions(text):
        if instruction == "FROM":
            image, _, name = re.sub(r"--platform=\S+\s+", "", rest).partition(" AS ")
            base = re.sub(r"\$\{(\w+)\}", lambda m: global_args.get(m.group(1), m.group(0)), image.strip())
            stages.append(Stage(base, name.strip()))
        elif not stages and instruction == "ARG":
            key, _, default = rest.partition("=")
            global_args[key] = default
        else:
            assert stages, f"{instruction} before the first FROM"
            stages[-1].instructions.append((instruction, rest))
    return global_args, stages


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return parse((ROOT / "Dockerfile").read_text())[1]


def test_multi_stage_build_on_python_311_slim(stages: list[Stage]) -> None:
    assert len(stages) >= 2
    builder, final = stages[0], stages[-1]
    assert builder.name == "builder"
    assert final.base == "python:3.11-slim"
    assert any(a.startswith("--from=builder ") for a in final.args("COPY"))
    # Dependencies are installed in the builder only; the runtime stage gets the finished venv.
    assert not any("pip" in a for a in final.args("RUN"))


def test_final_stage_runs_as_a_numeric_non_root_user(stages: list[Stage]) -> None:
    final = stages[-1]
    users = final.args("USER")
    assert users, "the final stage must set USER"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit() and int(uid) == 10001
    assert not gid or (gid.isdigit() and int(gid) != 0)
    # The uid the chart's securityContext uses must exist in the image.
    assert any("--uid 10001" in a for a in final.args("RUN"))


def test_embedded_build_arg_selects_the_extra(stages: list[Stage]) -> None:
    builder = stages[0]
    assert "EMBEDDED=true" in builder.args("ARG")
    (install,) = [a for a in builder.args("RUN") if "$EMBEDDED" in a]
    assert re.search(r"true\)\s*extra=embedded", install)
    assert re.search(r"false\)\s*extra=collector", install)
    assert "[$extra]" in install
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert {"embedded", "collector"} <= set(extras)


def test_image_carries_both_entry_points(stages: list[Stage]) -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert {"probe-agent", "probe-collector"} <= set(scripts)
    (install,) = [a for a in stages[0].args("RUN") if "$EMBEDDED" in a]
    for script in ("probe-agent", "probe-collector"):
        assert f"/opt/probenet/bin/{script} --help" in install  # the build fails if one is missing
    assert any(a.startswith("PATH=/opt/probenet/bin:") for a in stages[-1].args("ENV"))


def test_build_context_holds_what_the_build_copies() -> None:
    ignore = (ROOT / ".dockerignore").read_text().split()
    assert ignore[ignore.index("*") + 1 :] and "*" in ignore  # allow-list: nothing else leaks in
    _, stages = parse((ROOT / "Dockerfile").read_text())
    sources = [src for a in stages[0].args("COPY") for src in a.split()[:-1] if not src.startswith("--")]
    assert "pyproject.toml" in sources
    for source in sources:
        assert (ROOT / source).exists(), source
        assert f"!{source}" in ignore or f"!{source}/" in ignore, f"{source} is excluded by .dockerignore"
