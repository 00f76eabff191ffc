"""Anchoring against a real Ethereum node: anvil (npm @foundry-rs/anvil) on loopback.

One anvil per module, on a free 127.0.0.1 port, stopped by its PID at the end. The key
below is anvil's first public development account (known to everyone: test use only).
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import io
import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from notary.anchor import anchor_record, anchor_run, upgrade_pending, verify_anchor
from notary.anchor import chain as chain_module
from notary.anchor.anchorer import FINAL, PENDING
from notary.cli import main
from notary.config import load
from notary.store import Store
from notary.store.models import COMPLETE
from notary.verdict import Verdict, combine
from tests.conftest import REPO, require
from tests.services import free_port

ANVIL_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
ANVIL_CHAIN_ID = 31337
CONFIRMATIONS = 3
START_TIMEOUT = 30.0


def _anvil_binary() -> str | None:
    pattern = str(REPO / "contracts/node_modules/@foundry-rs/anvil-*/bin/anvil")
    found = sorted(glob.glob(pattern))
    return found[0] if found else shutil.which("anvil")


class Anvil:
    """A running anvil and its JSON-RPC helpers."""

    def __init__(self, binary: str, port: int, *extra: str) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.process = subprocess.Popen(
            [binary, "--host", "127.0.0.1", "--port", str(port), "--silent", *extra],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def rpc(self, method: str, *params: Any) -> Any:
        body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}
        answer = requests.post(self.url, json=body, timeout=10).json()
        assert "error" not in answer, answer
        return answer["result"]

    def wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            with contextlib.suppress(requests.RequestException):
                self.rpc("eth_chainId")
                return
            time.sleep(0.1)
        raise RuntimeError("anvil did not start")

    def mine(self, blocks: int) -> None:
        self.rpc("anvil_mine", hex(blocks))

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _start_anvil(*extra: str) -> Iterator[Anvil]:
    binary = _anvil_binary()
    require(binary is not None, "anvil absent: run `npm ci --prefix contracts`")
    assert binary is not None
    node = Anvil(binary, free_port(), *extra)
    try:
        node.wait_ready()
        yield node
    finally:
        node.stop()


@pytest.fixture(scope="module")
def anvil() -> Iterator[Anvil]:
    yield from _start_anvil()


@pytest.fixture(scope="module")
def legacy_anvil() -> Iterator[Anvil]:
    """A node before EIP-1559 (no base fee), like many consortium chains."""
    yield from _start_anvil("--hardfork", "berlin")


@pytest.fixture(scope="module")
def contract(anvil: Anvil, tmp_path_factory: pytest.TempPathFactory) -> str:
    """Deploy the registry once through the command line; return its address."""
    home = tmp_path_factory.mktemp("deploy-home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("NOTARY_HOME", str(home))
        patch.setenv("NOTARY_ANCHOR_KEY", ANVIL_KEY)
        result = _cli_json(["anchor", "deploy", "--rpc", anvil.url, "--json"])
    assert result["chain_id"] == ANVIL_CHAIN_ID
    return str(result["contract"])


def _cli_json(argv: list[str]) -> Any:
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        code = main(argv)
    assert code == 0, output.getvalue()
    return json.loads(output.getvalue())


@pytest.fixture
def configured(
    anvil: Anvil, contract: str, home: Path, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """A data directory whose config anchors to the anvil node."""
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(
        "[anchor]\n"
        f'rpc_url = "{anvil.url}"\n'
        f"chain_id = {ANVIL_CHAIN_ID}\n"
        f'contract = "{contract}"\n'
        f"confirmations = {CONFIRMATIONS}\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("NOTARY_ANCHOR_KEY", ANVIL_KEY)
    return home


def _sealed_run(store: Store, label: str) -> tuple[int, bytes]:
    root = hashlib.sha256(label.encode()).digest()
    run = store.create_run(
        stream=label, period="2026-11", algorithm="sha256", source="[]"
    )
    assert run.id is not None
    store.update_run(run.id, root=root, state=COMPLETE)
    return run.id, root


def _final_record(anvil: Anvil, configured: Path, store: Store, label: str) -> Any:
    settings = load(configured)
    run_id, root = _sealed_run(store, label)
    anchor_run(settings, store, run_id)
    anvil.mine(CONFIRMATIONS)
    upgrade_pending(settings, store)
    return anchor_record(store.anchors(run_id)[0]), root


def test_anvil_anchor_final_verifies_online(
    anvil: Anvil, configured: Path, store: Store
) -> None:
    settings = load(configured)
    run_id, root = _sealed_run(store, "logs")

    entry = anchor_run(settings, store, run_id)
    anvil.mine(CONFIRMATIONS)
    (upgraded,) = upgrade_pending(settings, store)
    record = anchor_record(store.anchors(run_id)[0])
    checks = verify_anchor(record, root, anvil.url)

    assert entry["state"] == PENDING
    assert upgraded["state"] == FINAL
    assert combine(checks) is Verdict.VALID
    assert any(c.name == "anchor time" and "anchored at" in c.detail for c in checks)


def test_anvil_tampered_tx_hash_is_invalid(
    anvil: Anvil, configured: Path, tmp_path: Path
) -> None:
    store = Store(f"sqlite:///{tmp_path / 'notary.db'}")
    record, root = _final_record(anvil, configured, store, "tx")
    record["tx_hash"] = "0x" + "99" * 32

    checks = verify_anchor(record, root, anvil.url)

    assert combine(checks) is Verdict.INVALID
    assert checks[-1].name == "anchor transaction"


def test_anvil_tampered_root_is_invalid(
    anvil: Anvil, configured: Path, tmp_path: Path
) -> None:
    store = Store(f"sqlite:///{tmp_path / 'notary.db'}")
    record, _ = _final_record(anvil, configured, store, "root")
    forged = hashlib.sha256(b"forged").digest()
    record["root"] = forged.hex()

    checks = verify_anchor(record, forged, anvil.url)

    assert combine(checks) is Verdict.INVALID
    assert [c.name for c in checks if c.ok is False] == ["anchor event"]


def test_anvil_reorg_makes_anchor_pending_then_resent(
    anvil: Anvil, configured: Path, tmp_path: Path
) -> None:
    store = Store(f"sqlite:///{tmp_path / 'notary.db'}")
    settings = load(configured)
    run_id, root = _sealed_run(store, "reorg")
    snapshot = anvil.rpc("evm_snapshot")
    anchor_run(settings, store, run_id)
    (mined,) = upgrade_pending(settings, store)

    anvil.rpc("evm_revert", snapshot)
    anvil.mine(2)
    (after_reorg,) = upgrade_pending(settings, store)
    anvil.mine(CONFIRMATIONS)
    upgrade_pending(settings, store)
    upgrade_pending(settings, store)
    record = anchor_record(store.anchors(run_id)[0])

    assert mined["block_hash"] is not None
    assert after_reorg["state"] == PENDING
    assert after_reorg["block_hash"] != mined["block_hash"]
    assert record["state"] == FINAL and record["block_hash"] != mined["block_hash"]
    assert combine(verify_anchor(record, root, anvil.url)) is Verdict.VALID


def test_anvil_status_cli_lists_anchor(
    anvil: Anvil, configured: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = load(configured)
    store = Store(settings.database_url)
    run_id, _ = _sealed_run(store, "cli")
    anchor_run(settings, store, run_id)

    result = _cli_json(["--home", str(configured), "anchor", "status", "--json"])

    (entry,) = result["anchors"]
    assert entry["run"] == run_id and entry["chain_id"] == ANVIL_CHAIN_ID
    assert ANVIL_KEY[2:] not in json.dumps(result)
    assert main(["--home", str(configured), "anchor", "upgrade"]) == 0


def test_anvil_cli_attest_export_verify_online(
    anvil: Anvil, configured: Path, tmp_path: Path
) -> None:
    evidence = tmp_path / "evidence"
    evidence.mkdir()
    (evidence / "ledger.csv").write_text("2026-11-30,42.00\n", encoding="utf-8")
    bundle = tmp_path / "bundle.zip"
    home = ["--home", str(configured)]
    anchor_section = (configured / "config.toml").read_text("utf-8")
    (configured / "config.toml").unlink()
    _cli_json([*home, "init", "--json"])
    with (configured / "config.toml").open("a", encoding="utf-8") as config:
        config.write("\n" + anchor_section)
    attested = _cli_json(
        [
            *home,
            "attest",
            "--stream",
            "books",
            "--period",
            "2026-11",
            "--anchor",
            str(evidence),
            "--json",
        ]
    )
    anvil.mine(CONFIRMATIONS)
    _cli_json([*home, "anchor", "upgrade", "--json"])
    _cli_json([*home, "export", str(attested["run"]), "-o", str(bundle), "--json"])

    report = _cli_json(
        [
            *home,
            "verify",
            "--rpc",
            anvil.url,
            "--trust-root",
            str(configured / "tsa" / "ca.pem"),
            str(bundle),
            "--json",
        ]
    )

    anchors = [c for c in report["checks"] if c["name"].startswith("anchor")]
    assert attested["anchor"]["state"] == PENDING
    assert {c["name"] for c in anchors} >= {"anchor event", "anchor canonical"}
    assert all(c["ok"] is True for c in anchors)
    assert report["verdict"] == "valid"


def test_anvil_legacy_fee_chain_anchors_with_gas_price(
    legacy_anvil: Anvil, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOTARY_ANCHOR_KEY", ANVIL_KEY)
    home = tmp_path / "legacy-home"
    monkeypatch.setenv("NOTARY_HOME", str(home))
    deployed = _cli_json(["anchor", "deploy", "--rpc", legacy_anvil.url, "--json"])
    home.mkdir(exist_ok=True)
    (home / "config.toml").write_text(
        f'[anchor]\nrpc_url = "{legacy_anvil.url}"\n'
        f'contract = "{deployed["contract"]}"\nconfirmations = 1\n',
        encoding="utf-8",
    )
    settings = load(home)
    store = Store(settings.database_url)
    run_id, root = _sealed_run(store, "legacy")

    anchor_run(settings, store, run_id)
    upgrade_pending(settings, store)
    (row,) = store.anchors(run_id)

    assert row.state == FINAL and row.max_priority_fee_per_gas is None
    assert (
        combine(verify_anchor(anchor_record(row), root, legacy_anvil.url))
        is Verdict.VALID
    )


def test_anvil_chain_reset_recorded_nonce_is_skipped_and_gap_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    nodes = _start_anvil()
    node = next(nodes)
    try:
        monkeypatch.setenv("NOTARY_ANCHOR_KEY", ANVIL_KEY)
        home = tmp_path / "reset-home"
        monkeypatch.setenv("NOTARY_HOME", str(home))
        deployed = _cli_json(["anchor", "deploy", "--rpc", node.url, "--json"])
        home.mkdir(exist_ok=True)
        (home / "config.toml").write_text(
            f'[anchor]\nrpc_url = "{node.url}"\nchain_id = {ANVIL_CHAIN_ID}\n'
            f'contract = "{deployed["contract"]}"\nconfirmations = 1\n',
            encoding="utf-8",
        )
        settings = load(home)
        store = Store(settings.database_url)
        before, _ = _sealed_run(store, "before")
        anchor_run(settings, store, before)
        upgrade_pending(settings, store)
        # The node starts over from genesis and notary restarts (a fresh process):
        # the contract lands at the same address.
        node.rpc("anvil_reset")
        monkeypatch.setattr(chain_module, "_rpc_chains", {})
        again = _cli_json(["anchor", "deploy", "--rpc", node.url, "--json"])
        after, _ = _sealed_run(store, "after")

        anchor_run(settings, store, after)
        upgrade_pending(settings, store)
        (old,) = store.anchors(before)
        (new,) = store.anchors(after)
    finally:
        nodes.close()

    assert again["contract"] == deployed["contract"] and old.state == FINAL
    assert old.nonce is not None and new.nonce == old.nonce + 1
    assert new.state == PENDING and (new.last_error or "").startswith("nonce gap")
