"""The command VERIFY.md gives an auditor works with plain OpenSSL, as written."""

from __future__ import annotations

import re
import shlex
import subprocess
import zipfile
from pathlib import Path

from notary.tsa.server import BuiltinTSA
from tests.bundlekit import make_bundle, write_files
from tests.conftest import require_tool


def test_bundle_guide_openssl_command_verifies_the_token(tmp_path: Path) -> None:
    openssl = require_tool("openssl")
    tsa = BuiltinTSA.open(tmp_path / "tsa")
    evidence = write_files(tmp_path / "evidence", {"a.log": b"a\n", "b.log": b"b\n"})
    make_bundle(evidence, tsa, tmp_path / "run.zip")
    with zipfile.ZipFile(tmp_path / "run.zip") as archive:
        archive.extractall(tmp_path / "unpacked")
    guide = (tmp_path / "unpacked" / "VERIFY.md").read_text()
    command = re.search(r"^openssl ts -verify .*$", guide, re.MULTILINE)
    assert command is not None
    argv = shlex.split(command.group(0).replace("TSA-CA.pem", str(tsa.ca_path)))

    result = subprocess.run(
        [openssl, *argv[1:]],
        cwd=tmp_path / "unpacked",
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 0, result.stderr
    assert "Verification: OK" in result.stdout
