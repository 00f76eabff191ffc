"""The committed contract artefact is exactly what the pinned solc builds."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.conftest import REPO, require, require_tool

ARTEFACT = REPO / "notary" / "anchor" / "RootRegistry.json"
SCRIPT = REPO / "scripts" / "compile_contract.js"
SOLC = REPO / "contracts" / "node_modules" / "solc"


def test_contract_build_pinned_solc_reproduces_artefact(tmp_path: Path) -> None:
    node = require_tool("node")
    require(SOLC.is_dir(), "npm package solc absent: run `npm ci --prefix contracts`")
    out = tmp_path / "RootRegistry.json"

    subprocess.run(
        [node, str(SCRIPT), "--out", str(out)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    built = json.loads(out.read_text("utf-8"))
    committed = json.loads(ARTEFACT.read_text("utf-8"))

    assert built["bytecode"] == committed["bytecode"]
    assert built["deployedBytecode"] == committed["deployedBytecode"]
    assert built == committed


def test_contract_build_pinned_version_matches_package_json() -> None:
    package = json.loads((REPO / "contracts" / "package.json").read_text("utf-8"))
    committed = json.loads(ARTEFACT.read_text("utf-8"))

    pinned = package["devDependencies"]["solc"]

    assert committed["compiler"]["version"].startswith(pinned + "+")
