"""anchor_run, upgrade_pending and status over the store, on the builtin chain."""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from notary.anchor import (
    anchor_record,
    anchor_run,
    missing_anchors,
    status,
    upgrade_pending,
)
from notary.anchor.anchorer import FAILED, FINAL, PENDING, Anchorer
from notary.anchor.chain import builtin_chain
from notary.anchor.service import upgrade
from notary.config import AnchorConfig, Settings, StreamConfig
from notary.errors import AnchorError, ConfigError, UsageError
from notary.store import Store
from notary.store.models import Anchor

MakeRun = Callable[..., tuple[int, bytes]]
# A throwaway key made for these tests only.
TEST_KEY = "0x" + "6b" * 32


def _settings(store: Store, tmp_path: Path, **anchor: object) -> Settings:
    config = AnchorConfig(confirmations=2, **anchor)  # type: ignore[arg-type]
    return Settings(home=tmp_path, database_url=store.url, anchor=config)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_anchor_run_builtin_is_final_at_once(
    store: Store, tmp_path: Path, make_run: MakeRun
) -> None:
    run_id, root = make_run()

    entry = anchor_run(_settings(store, tmp_path), store, run_id)

    assert entry["state"] == FINAL and entry["local"] is True
    assert entry["root"] == root.hex() and entry["block_hash"].startswith("0x")


def test_anchor_run_twice_keeps_one_anchor(
    store: Store, tmp_path: Path, make_run: MakeRun
) -> None:
    run_id, _ = make_run()
    settings = _settings(store, tmp_path)

    first = anchor_run(settings, store, run_id)
    second = anchor_run(settings, store, run_id)

    assert first["id"] == second["id"]
    assert len(store.anchors(run_id)) == 1


def test_anchor_run_without_root_is_refused(store: Store, tmp_path: Path) -> None:
    run = store.create_run(
        stream="s", period="2026-11", algorithm="sha256", source="[]"
    )

    with pytest.raises(UsageError, match="has no root to anchor yet"):
        anchor_run(_settings(store, tmp_path), store, run.id or 0)


def test_anchor_run_unreachable_node_keeps_pending_row(
    store: Store, tmp_path: Path, make_run: MakeRun, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOTARY_ANCHOR_KEY", TEST_KEY)
    run_id, _ = make_run()
    settings = _settings(
        store,
        tmp_path,
        rpc_url=f"http://127.0.0.1:{_closed_port()}/secret-api-key",
        chain_id=31337,
        contract="0x" + "11" * 20,
    )

    entry = anchor_run(settings, store, run_id)

    assert entry["state"] == PENDING and entry["tx_hash"] is None
    assert "cannot reach the RPC node at 127.0.0.1" in entry["last_error"]
    assert "secret-api-key" not in entry["last_error"]


def test_anchor_run_rpc_without_key_is_anchor_error_and_run_missing(
    store: Store, tmp_path: Path, make_run: MakeRun
) -> None:
    run_id, _ = make_run()
    settings = _settings(
        store,
        tmp_path,
        rpc_url=f"http://127.0.0.1:{_closed_port()}",
        chain_id=1,
        contract="0x" + "11" * 20,
    )
    settings.streams = [StreamConfig(name="run", source="/x", anchor=True)]

    with pytest.raises(AnchorError, match=f"run {run_id} not anchored: no signing key"):
        anchor_run(settings, store, run_id)

    assert missing_anchors(settings, store) == [run_id]


def test_anchor_run_configured_key_is_funded_and_never_logged(
    store: Store,
    tmp_path: Path,
    make_run: MakeRun,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("NOTARY_ANCHOR_KEY", TEST_KEY)
    caplog.set_level(logging.DEBUG, logger="notary")
    run_id, _ = make_run()

    entry = anchor_run(_settings(store, tmp_path), store, run_id)

    assert entry["state"] == FINAL
    assert entry["sender"] in caplog.text
    assert TEST_KEY[2:] not in caplog.text.lower()
    assert TEST_KEY[2:] not in str(status(_settings(store, tmp_path), store)).lower()


def test_upgrade_pending_nothing_open_connects_nowhere(
    store: Store, tmp_path: Path
) -> None:
    settings = _settings(store, tmp_path, rpc_url="http://127.0.0.1:9/never")

    assert upgrade_pending(settings, store) == []


def test_upgrade_pending_builtin_row_of_earlier_process_fails(
    store: Store, tmp_path: Path, make_run: MakeRun
) -> None:
    run_id, root = make_run()
    chain = builtin_chain()
    row = Anchor(
        run_id=run_id,
        chain_id=chain.chain_id,
        contract="0x" + "22" * 20,
        root=root,
        sender="0x" + "33" * 20,
        state=PENDING,
        created_at=chain.started_at - timedelta(hours=1),
    )
    with store.session() as session:
        session.add(row)

    (entry,) = upgrade_pending(_settings(store, tmp_path), store)

    assert entry["state"] == FAILED
    assert "earlier process" in entry["last_error"]


def test_status_lists_anchors_with_bundle_record(
    store: Store, tmp_path: Path, make_run: MakeRun
) -> None:
    run_id, _ = make_run()
    settings = _settings(store, tmp_path)
    anchor_run(settings, store, run_id)

    (entry,) = status(settings, store)
    record = anchor_record(store.anchors(run_id)[0])

    assert entry["run"] == run_id and entry["attempts"] == 1
    assert {key: entry[key] for key in record} == record


def _anchored_streams(settings: Settings, *names: str) -> Settings:
    settings.streams = [
        StreamConfig(name=name, source="/x", anchor=True) for name in names
    ]
    return settings


def test_missing_anchors_lists_complete_runs_of_anchored_streams_only(
    store: Store, tmp_path: Path, make_run: MakeRun
) -> None:
    wanted, _ = make_run("a")
    make_run("plain")
    done, _ = make_run("b")
    settings = _anchored_streams(_settings(store, tmp_path), "a", "b", "c")
    anchor_run(settings, store, done)
    store.create_run(stream="c", period="2026-11", algorithm="sha256", source="[]")

    assert missing_anchors(settings, store) == [wanted]


def test_upgrade_pending_anchors_missing_runs_when_key_available(
    store: Store, tmp_path: Path, make_run: MakeRun
) -> None:
    run_id, root = make_run("a")
    settings = _anchored_streams(_settings(store, tmp_path), "a")

    (entry,) = upgrade_pending(settings, store)

    assert entry["run"] == run_id and entry["state"] == FINAL
    assert entry["root"] == root.hex()
    assert missing_anchors(settings, store) == []


def test_upgrade_missing_runs_without_key_is_config_error(
    store: Store, tmp_path: Path, make_run: MakeRun
) -> None:
    make_run("a")
    settings = _anchored_streams(
        _settings(
            store,
            tmp_path,
            rpc_url=f"http://127.0.0.1:{_closed_port()}",
            chain_id=1,
            contract="0x" + "11" * 20,
        ),
        "a",
    )

    with pytest.raises(ConfigError, match="no signing key"):
        upgrade(settings, store)

    assert store.anchors() == []


def test_upgrade_missing_runs_node_down_skipped_with_reason(
    store: Store, tmp_path: Path, make_run: MakeRun, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOTARY_ANCHOR_KEY", TEST_KEY)
    run_id, _ = make_run("a")
    settings = _anchored_streams(
        _settings(
            store,
            tmp_path,
            rpc_url=f"http://127.0.0.1:{_closed_port()}",
            chain_id=1,
            contract="0x" + "11" * 20,
        ),
        "a",
    )

    report = upgrade(settings, store)

    assert report["anchors"] == []
    (skipped,) = report["skipped"]
    assert skipped["run"] == run_id
    assert "cannot reach the RPC node at 127.0.0.1" in skipped["reason"]


def test_upgrade_pending_one_failing_anchor_leaves_the_others(
    store: Store,
    tmp_path: Path,
    make_run: MakeRun,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bad, _ = make_run("a")
    good, _ = make_run("b")
    settings = _anchored_streams(_settings(store, tmp_path), "a", "b")
    real = Anchorer.advance

    def advance(self: Anchorer, row: Anchor) -> Anchor:
        if row.run_id == bad:
            raise RuntimeError("boom")
        return real(self, row)

    monkeypatch.setattr(Anchorer, "advance", advance)

    entries = {entry["run"]: entry for entry in upgrade_pending(settings, store)}

    assert entries[good]["state"] == FINAL
    assert entries[bad]["state"] == PENDING
    assert entries[bad]["last_error"] == "anchor: internal error: RuntimeError"


def _foreign_row(store: Store, run_id: int, root: bytes, **changes: object) -> Anchor:
    """An anchor recorded under a wrong [anchor] chain_id (chain 1)."""
    values: dict[str, object] = {
        "run_id": run_id,
        "chain_id": 1,
        "contract": "0x" + "11" * 20,
        "root": root,
        "sender": "0x" + "33" * 20,
        "state": PENDING,
        "last_error": "anchor: cannot reach the RPC node at 127.0.0.1: ConnectionError",
    }
    values.update(changes)
    row = Anchor(**values)  # type: ignore[arg-type]
    with store.session() as session:
        session.add(row)
        session.flush()
        assert row.id is not None
    return row


def test_upgrade_pending_unsent_anchor_of_other_chain_is_retargeted(
    store: Store, tmp_path: Path, make_run: MakeRun
) -> None:
    chain = builtin_chain()
    run_id, root = make_run()
    _foreign_row(store, run_id, root)

    (entry,) = upgrade_pending(_settings(store, tmp_path), store)

    assert entry["chain_id"] == chain.chain_id
    assert entry["contract"] == chain.registry_address
    assert entry["tx_hash"] is not None and entry["state"] == PENDING
    assert entry["last_error"] is None


def test_upgrade_pending_sent_anchor_of_other_chain_fails_with_reason(
    store: Store, tmp_path: Path, make_run: MakeRun
) -> None:
    run_id, root = make_run()
    _foreign_row(store, run_id, root, tx_hash="0x" + "ab" * 32, nonce=4)

    (entry,) = upgrade_pending(_settings(store, tmp_path), store)

    assert entry["state"] == FAILED and entry["chain_id"] == 1
    assert "was made for chain 1" in entry["last_error"]
    assert "no longer followed" in entry["last_error"]


def test_upgrade_chain_id_mismatch_is_config_error_and_updates_last_error(
    store: Store, tmp_path: Path, make_run: MakeRun
) -> None:
    chain = builtin_chain()
    run_id, root = make_run()
    _foreign_row(store, run_id, root, chain_id=chain.chain_id)
    settings = _settings(store, tmp_path, chain_id=1)

    with pytest.raises(ConfigError, match="expected 1"):
        upgrade_pending(settings, store)

    (row,) = store.anchors(run_id)
    assert row.last_error is not None and "expected 1" in row.last_error


def test_upgrade_pending_success_clears_stale_last_error(
    store: Store, tmp_path: Path, make_run: MakeRun
) -> None:
    settings = _settings(store, tmp_path)
    run_id, _ = make_run()
    anchor_run(settings, store, run_id)
    (row,) = store.anchors(run_id)
    row.last_error = "anchor: cannot reach the RPC node at 127.0.0.1: ConnectionError"
    row.state = PENDING
    with store.session() as session:
        session.merge(row)

    (entry,) = upgrade_pending(settings, store)

    assert entry["state"] == FINAL and entry["last_error"] is None
