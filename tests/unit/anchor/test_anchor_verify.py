"""Offline checks of an anchor record; the online ones run against anvil."""

from __future__ import annotations

import hashlib
import socket
from datetime import UTC, datetime
from typing import Any

from notary.anchor import anchor_record, is_exportable, verify_anchor
from notary.store.models import Anchor
from notary.verdict import Verdict, combine

ROOT = hashlib.sha256(b"root").digest()


def _record(**changes: Any) -> dict[str, Any]:
    record = {
        "chain_id": 11155111,
        "contract": "0x" + "12" * 20,
        "tx_hash": "0x" + "34" * 32,
        "block_number": 100,
        "block_hash": "0x" + "56" * 32,
        "block_time": "2026-12-04T16:00:00Z",
        "log_index": 0,
        "root": ROOT.hex(),
        "state": "final",
        "confirmations": 12,
        "sender": "0x" + "78" * 20,
    }
    record.update(changes)
    return record


def test_verify_anchor_offline_consistent_is_indeterminate() -> None:
    checks = verify_anchor(_record(), ROOT, None)

    assert combine(checks) is Verdict.INDETERMINATE
    assert "indeterminate (offline)" in checks[-1].detail
    assert all(check.facts["advisory"] is True for check in checks)


def test_verify_anchor_other_root_is_invalid() -> None:
    checks = verify_anchor(_record(), hashlib.sha256(b"other").digest(), None)

    assert combine(checks) is Verdict.INVALID
    assert [c.name for c in checks if c.ok is False] == ["anchor root"]


def test_verify_anchor_malformed_fields_are_named() -> None:
    record = _record(chain_id=True, tx_hash="0x12", block_time="yesterday")

    checks = verify_anchor(record, ROOT, None)

    assert combine(checks) is Verdict.INVALID
    assert checks[0].detail == "malformed field(s): chain_id, tx_hash, block_time"


def test_verify_anchor_pending_needs_no_block_fields() -> None:
    record = _record(
        state="pending", block_number=None, block_hash=None, log_index=None
    )

    checks = verify_anchor(record, ROOT, None)

    assert combine(checks) is Verdict.INDETERMINATE
    assert [c.ok for c in checks[:2]] == [True, True]


def test_verify_anchor_local_chain_is_flagged() -> None:
    checks = verify_anchor(_record(chain_id=31337), ROOT, None)

    (local,) = [c for c in checks if c.name == "anchor chain"]
    assert local.warning and "proves nothing to third parties" in local.detail


def test_verify_anchor_sha512_root_matches_record() -> None:
    root = hashlib.sha512(b"root").digest()

    checks = verify_anchor(_record(root=root.hex()), root, None)

    assert checks[1].ok is True


def test_verify_anchor_unreachable_rpc_is_indeterminate_without_url() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]

    checks = verify_anchor(_record(), ROOT, f"http://127.0.0.1:{port}/secret-key")

    assert combine(checks) is Verdict.INDETERMINATE
    assert checks[-1].detail.startswith("indeterminate: anchor: cannot reach")
    assert "secret-key" not in checks[-1].detail


def _row(**changes: Any) -> Anchor:
    values: dict[str, Any] = {
        "run_id": 1,
        "chain_id": 11155111,
        "contract": "0x" + "12" * 20,
        "root": ROOT,
        "sender": "0x" + "78" * 20,
        "tx_hash": "0x" + "34" * 32,
        "state": "final",
        "block_number": 100,
        "block_hash": "0x" + "56" * 32,
        "block_time": datetime(2026, 12, 4, 16, tzinfo=UTC),
        "log_index": 0,
        "confirmations_required": 12,
    }
    values.update(changes)
    return Anchor(**values)


def test_is_exportable_pending_without_tx_is_false() -> None:
    row = _row(state="pending", tx_hash=None, block_number=None, block_hash=None)

    assert is_exportable(row) is False
    assert "tx_hash" in verify_anchor(anchor_record(row), ROOT, None)[0].detail


def test_is_exportable_failed_is_false() -> None:
    assert is_exportable(_row(state="failed")) is False


def test_is_exportable_final_and_sent_pending_pass_the_record_check() -> None:
    rows = [
        _row(),
        _row(state="submitted", block_number=None, block_hash=None, block_time=None),
    ]

    checks = [verify_anchor(anchor_record(row), ROOT, None)[0] for row in rows]

    assert [is_exportable(row) for row in rows] == [True, True]
    assert [check.ok for check in checks] == [True, True]


def test_is_exportable_final_without_block_time_is_false() -> None:
    assert is_exportable(_row(block_time=None)) is False
