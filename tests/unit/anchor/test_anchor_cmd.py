"""The ``notary anchor`` commands on the builtin chain."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from notary.cli import main
from notary.errors import EXIT_OK, EXIT_USAGE


def test_anchor_status_empty_store_prints_no_anchors(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["anchor", "status"])

    assert code == EXIT_OK
    assert capsys.readouterr().out == "no anchors\n"


def test_anchor_upgrade_json_nothing_pending(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["anchor", "upgrade", "--json"])

    assert code == EXIT_OK
    assert json.loads(capsys.readouterr().out) == {"anchors": []}


def test_anchor_deploy_builtin_is_usage_error(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["anchor", "deploy", "--rpc", "builtin"])

    assert code == EXIT_USAGE
    assert "builtin chain lives inside one process" in capsys.readouterr().err


def test_anchor_deploy_without_key_names_the_variable(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["anchor", "deploy", "--rpc", "http://127.0.0.1:9"])

    assert code == EXIT_USAGE
    assert "NOTARY_ANCHOR_KEY" in capsys.readouterr().err
