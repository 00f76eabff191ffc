"""The ``notary anchor`` commands on the builtin chain."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from notary.cli import main
from notary.config import load
from notary.errors import EXIT_OK, EXIT_USAGE
from notary.store import Store
from notary.store.models import COMPLETE


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
    assert json.loads(capsys.readouterr().out) == {"anchors": [], "skipped": []}


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


def _config(home: Path, anchor: str) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(
        '[[stream]]\nname = "ledger"\nsource = "/x"\nanchor = true\n\n'
        f"[anchor]\n{anchor}\n",
        encoding="utf-8",
    )


def _complete_run(home: Path) -> int:
    store = Store(load(home).database_url)
    run = store.create_run(
        stream="ledger", period="2026-11", algorithm="sha256", source="[]"
    )
    assert run.id is not None
    store.update_run(run.id, root=b"\x01" * 32, state=COMPLETE)
    return run.id


def test_anchor_status_lists_run_without_anchor_and_reason(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _config(home, 'rpc_url = "http://127.0.0.1:9"\nchain_id = 1\ncontract = "0x1"')
    run_id = _complete_run(home)

    code = main(["anchor", "status"])

    out = capsys.readouterr().out
    assert code == EXIT_OK
    assert f"{run_id:>5} not anchored (no signing key)  [ledger 2026-11]" in out


def test_anchor_upgrade_says_what_was_skipped_and_why(
    home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOTARY_ANCHOR_KEY", "0x" + "6b" * 32)
    _config(home, 'rpc_url = "http://127.0.0.1:9"\nchain_id = 1\ncontract = "0x1"')
    run_id = _complete_run(home)

    code = main(["anchor", "upgrade"])

    out = capsys.readouterr().out
    assert code == EXIT_OK
    assert out.startswith(f"skipped run {run_id}: anchor: cannot reach the RPC node")


def test_anchor_upgrade_chain_id_mismatch_exits_usage(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _config(home, "chain_id = 1")
    _complete_run(home)

    code = main(["anchor", "upgrade"])

    assert code == EXIT_USAGE
    assert "expected 1" in capsys.readouterr().err
