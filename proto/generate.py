"""Regenerate the wire code in probenet/v1/ from proto/probenet/v1/*.proto.

Run `python proto/generate.py`; tests/test_wire_generated.py fails when the checked-in
code differs from what this script produces. Never edit the generated files by hand.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

from grpc_tools import protoc  # type: ignore[import-untyped]

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "proto"
PACKAGE_DIR = Path("probenet") / "v1"


def generate(out_root: Path) -> list[Path]:
    """Write generated modules under out_root/probenet/v1 and return their paths."""
    protos = sorted(str(p.relative_to(PROTO_ROOT)) for p in (PROTO_ROOT / PACKAGE_DIR).glob("*.proto"))
    include = Path(protoc.__file__).parent / "_proto"
    target = out_root / PACKAGE_DIR
    target.mkdir(parents=True, exist_ok=True)
    args = [
        "protoc",
        f"-I{PROTO_ROOT}",
        f"-I{include}",
        f"--python_out={out_root}",
        f"--grpc_python_out={out_root}",
        f"--mypy_out={out_root}",
        f"--mypy_grpc_out={out_root}",
        *protos,
    ]
    # The mypy plugins are console scripts installed next to this interpreter.
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    (target / "__init__.py").write_text('"""Generated wire code; see proto/generate.py."""\n')
    return sorted(target.iterdir())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=ROOT, help="root to write probenet/v1 under")
    out = parser.parse_args().out
    with tempfile.TemporaryDirectory() as tmp:
        produced = generate(Path(tmp))
        dest = out / PACKAGE_DIR
        if dest.exists():
            shutil.rmtree(dest)
        dest.mkdir(parents=True)
        for path in produced:
            shutil.copy(path, dest / path.name)
    print(f"generated {len(produced)} files in {dest}", file=sys.stderr)


if __name__ == "__main__":
    main()
