"""The anchor record: what a bundle keeps of an anchor (``anchors/<k>.json``).

Keys: ``chain_id`` (int), ``contract``, ``sender``, ``tx_hash``, ``block_hash`` (0x
hex), ``block_number``, ``log_index`` (int; the log's index within its block),
``block_time`` (ISO 8601 UTC), ``root`` (hex of the tree root, no 0x), ``state``
(``final`` or ``pending``; a pending anchor's block fields may be null) and
``confirmations`` (blocks required before final). The value on chain is
`anchored_value` of the root. No web3 here: exporting a bundle needs no chain library.
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime
from typing import Any, Protocol

DEFAULT_CONFIRMATIONS = 12
# Chain ids used by development nodes: anchors there are witnessed by nobody else.
LOCAL_CHAIN_IDS = {
    131277322940537: "eth-tester",
    31337: "anvil/hardhat",
    1337: "development node",
}
RECORD_KEYS = (
    "chain_id",
    "contract",
    "tx_hash",
    "block_number",
    "block_hash",
    "block_time",
    "log_index",
    "root",
    "state",
    "confirmations",
    "sender",
)
# A submitted transaction is, for a reader of the bundle, simply not final yet.
_BUNDLE_STATE = {"submitted": "pending", "pending": "pending", "final": "final"}

ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
HASH32 = re.compile(r"^0x[0-9a-fA-F]{64}$")
ROOT_HEX = re.compile(r"^(?:[0-9a-f]{64}|[0-9a-f]{96}|[0-9a-f]{128})$")


class AnchorRow(Protocol):
    """The columns of the store's anchor table that a record needs."""

    chain_id: int
    contract: str
    root: bytes
    sender: str
    tx_hash: str | None
    state: str
    block_number: int | None
    block_hash: str | None
    block_time: datetime | None
    log_index: int | None
    confirmations_required: int


def anchor_record(row: AnchorRow) -> dict[str, Any]:
    """Return the bundle record of an anchor row (see the module docstring).

    A ``failed`` row keeps state ``failed``; exporters leave such anchors out.
    """
    return {
        "chain_id": int(row.chain_id),
        "contract": row.contract,
        "tx_hash": row.tx_hash,
        "block_number": row.block_number,
        "block_hash": row.block_hash,
        "block_time": iso(row.block_time),
        "log_index": row.log_index,
        "root": bytes(row.root).hex(),
        "state": _BUNDLE_STATE.get(row.state, row.state),
        "confirmations": int(row.confirmations_required),
        "sender": row.sender,
    }


def anchored_value(root: bytes) -> bytes:
    """Return the 32 bytes put on chain for a tree root.

    A SHA-256 root (32 bytes) is anchored as it is; a longer root (SHA-384/512) is
    anchored as its SHA-256 digest, because the contract stores ``bytes32``.
    """
    if len(root) == 32:
        return root
    return hashlib.sha256(root).digest()


def iso(value: datetime | None) -> str | None:
    """Return ``value`` as ISO 8601 UTC with a ``Z`` (seconds), or None."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(text: str) -> datetime:
    """Parse an ISO 8601 time (``Z`` accepted); raise ValueError when malformed."""
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        raise ValueError(f"time without zone: {text}")
    return value.astimezone(UTC)
