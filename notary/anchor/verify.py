"""Check a bundle's anchor record against the bundle's root and, optionally, a chain.

Offline, only the record's own consistency can be checked: the result is indeterminate.
With an RPC URL chosen by the verifier, the transaction's receipt must carry the
contract's ``Anchored`` event with this root at the recorded log index, in a block that
is canonical and has enough confirmations. Every check carries ``facts["advisory"]``:
an anchor is a second witness beside the TSA tokens, so a bundle valid by its tokens
stays valid when its anchor cannot be confirmed; the anchor's verdict is shown beside.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from notary.anchor.receipt import (
    ADDRESS,
    DEFAULT_CONFIRMATIONS,
    HASH32,
    LOCAL_CHAIN_IDS,
    ROOT_HEX,
    AnchorRow,
    anchor_record,
    anchored_value,
    iso,
    parse_iso,
)
from notary.verdict import Check

if TYPE_CHECKING:
    from notary.anchor.chain import Chain

__all__ = ["anchor_record", "is_exportable", "verify_anchor"]

_BLOCK_FIELDS = ("block_number", "block_hash", "log_index", "block_time")


def verify_anchor(
    record: dict[str, Any], root: bytes, rpc_url: str | None
) -> list[Check]:
    """Return the checks of one anchor record for the tree ``root`` (bytes).

    ``rpc_url`` None (or ``builtin``) checks offline. Never raises for bad records or
    node failures: they become failed (invalid) or undecided (indeterminate) checks.
    """
    facts = _facts(record)
    checks = [_check_record(record, facts)]
    if checks[0].ok is False:
        return checks
    checks.append(_check_root(record, root, facts))
    checks.append(_check_state(record, facts))
    local = _check_local(record, facts)
    if local is not None:
        checks.append(local)
    if rpc_url is None or rpc_url == "builtin":
        checks.append(
            Check(
                "anchor on chain",
                None,
                "indeterminate (offline): pass an RPC URL of this chain to check it",
                facts=facts,
            )
        )
        return checks
    return checks + _online(record, root, rpc_url, facts)


def is_exportable(row: AnchorRow) -> bool:
    """Return True when a bundle may carry the anchor record of ``row``.

    Exporters keep only such anchors, so that notary's own bundles never carry a record
    its verifier rejects: the row has a transaction hash (a ``pending`` row whose
    transaction was never made, e.g. while the node was down, has none), it is not
    ``failed``, and its record passes the verifier's record check.
    """
    if row.tx_hash is None or row.state not in ("submitted", "pending", "final"):
        return False
    return not _record_problems(anchor_record(row))


def _facts(record: dict[str, Any]) -> dict[str, Any]:
    return {
        "advisory": True,
        "chain_id": record.get("chain_id"),
        "tx_hash": record.get("tx_hash"),
    }


def _check(name: str, ok: bool | None, detail: str, facts: dict[str, Any]) -> Check:
    return Check(name, ok, detail, facts=dict(facts))


# offline ------------------------------------------------------------------------------


def _is_count(value: Any, least: int = 0) -> bool:
    return type(value) is int and value >= least


def _record_problems(record: dict[str, Any]) -> list[str]:
    problems = []
    if not _is_count(record.get("chain_id"), 1):
        problems.append("chain_id")
    if "confirmations" in record and not _is_count(record["confirmations"], 1):
        problems.append("confirmations")
    for key in ("contract", "sender"):
        if not ADDRESS.match(str(record.get(key, ""))):
            problems.append(key)
    if not HASH32.match(str(record.get("tx_hash", ""))):
        problems.append("tx_hash")
    if not ROOT_HEX.match(str(record.get("root", ""))):
        problems.append("root")
    if record.get("state") not in ("final", "pending"):
        problems.append("state")
    if record.get("state") == "final":
        problems += _block_problems(record)
    return problems


def _block_problems(record: dict[str, Any]) -> list[str]:
    problems = []
    for key in ("block_number", "log_index"):
        if not _is_count(record.get(key)):
            problems.append(key)
    if not HASH32.match(str(record.get("block_hash", ""))):
        problems.append("block_hash")
    try:
        parse_iso(str(record.get("block_time")))
    except ValueError:
        problems.append("block_time")
    return problems


def _check_record(record: dict[str, Any], facts: dict[str, Any]) -> Check:
    problems = _record_problems(record)
    if problems:
        return _check(
            "anchor record", False, f"malformed field(s): {', '.join(problems)}", facts
        )
    return _check("anchor record", True, "well-formed", facts)


def _check_root(record: dict[str, Any], root: bytes, facts: dict[str, Any]) -> Check:
    if str(record["root"]).lower() != root.hex():
        return _check(
            "anchor root",
            False,
            f"anchored root differs from the bundle root (expected {root.hex()}, "
            f"got {record['root']})",
            facts,
        )
    return _check("anchor root", True, "the anchored root is the bundle root", facts)


def _check_state(record: dict[str, Any], facts: dict[str, Any]) -> Check:
    if record["state"] == "final":
        needed = record.get("confirmations", DEFAULT_CONFIRMATIONS)
        return _check(
            "anchor state", True, f"final after {needed} confirmations", facts
        )
    return _check(
        "anchor state", None, "pending: not yet final when the bundle was made", facts
    )


def _check_local(record: dict[str, Any], facts: dict[str, Any]) -> Check | None:
    if record["chain_id"] not in LOCAL_CHAIN_IDS:
        return None
    check = _check(
        "anchor chain",
        True,
        f"chain {record['chain_id']} is a local development chain: it proves nothing "
        "to third parties",
        facts,
    )
    check.warning = True
    return check


# online -------------------------------------------------------------------------------


def _online(
    record: dict[str, Any], root: bytes, rpc_url: str, facts: dict[str, Any]
) -> list[Check]:
    from notary.anchor.chain import RPC_ERRORS, connect
    from notary.errors import AnchorError

    try:
        chain = connect(rpc_url)
        if chain.chain_id != record["chain_id"]:
            return [
                _check(
                    "anchor on chain",
                    None,
                    f"the RPC node serves chain {chain.chain_id}, the record names "
                    f"chain {record['chain_id']}",
                    facts,
                )
            ]
        return _on_chain(chain, record, root, facts)
    except AnchorError as exc:
        return [_check("anchor on chain", None, f"indeterminate: {exc.message}", facts)]
    except RPC_ERRORS as exc:
        from notary.anchor.tx import error_text

        detail = f"indeterminate: RPC failed: {error_text(exc)}"
        return [_check("anchor on chain", None, detail, facts)]


def _on_chain(
    chain: Chain, record: dict[str, Any], root: bytes, facts: dict[str, Any]
) -> list[Check]:
    from web3.exceptions import TransactionNotFound

    try:
        found = chain.w3.eth.get_transaction_receipt(record["tx_hash"])
    except TransactionNotFound:
        detail = f"no transaction {record['tx_hash']} on chain {chain.chain_id}"
        return [_check("anchor transaction", False, detail, facts)]
    steps: list[Callable[[], Check]] = [
        lambda: _check_status(found, facts),
        lambda: _check_inclusion(found, record, facts),
        lambda: _check_event(found, record, root, facts),
        lambda: _check_canonical(chain, found, facts),
        lambda: _check_depth(chain, found, record, facts),
        lambda: _check_time(chain, found, record, facts),
    ]
    checks = []
    for step in steps:
        checks.append(step())
        if checks[-1].ok is False:
            break
    return checks


def _hex(value: Any) -> str:
    return "0x" + bytes(value).hex()


def _check_status(found: Any, facts: dict[str, Any]) -> Check:
    if found["status"] != 1:
        return _check("anchor transaction", False, "the transaction reverted", facts)
    return _check("anchor transaction", True, "mined and successful", facts)


def _check_inclusion(
    found: Any, record: dict[str, Any], facts: dict[str, Any]
) -> Check:
    if record["state"] != "final":
        return _check(
            "anchor block", True, f"mined in block {found['blockNumber']}", facts
        )
    actual = (int(found["blockNumber"]), _hex(found["blockHash"]))
    expected = (record["block_number"], str(record["block_hash"]).lower())
    if actual != expected:
        detail = f"receipt block differs (expected {expected}, got {actual})"
        return _check("anchor block", False, detail, facts)
    return _check("anchor block", True, f"mined in block {actual[0]}", facts)


def _check_event(
    found: Any, record: dict[str, Any], root: bytes, facts: dict[str, Any]
) -> Check:
    from notary.anchor.tx import EVENT_TOPIC

    wanted = [EVENT_TOPIC, anchored_value(root), bytes(12) + _address_bytes(record)]
    index = record.get("log_index")
    for log in found["logs"]:
        if index is not None and int(log["logIndex"]) != index:
            continue
        topics = [bytes(topic) for topic in log["topics"]]
        same_contract = str(log["address"]).lower() == str(record["contract"]).lower()
        if same_contract and topics[:3] == wanted:
            return _check(
                "anchor event",
                True,
                f"Anchored event at log index {log['logIndex']}",
                facts,
            )
    detail = (
        f"no Anchored event of contract {record['contract']} for this root and sender "
        f"at log index {index}"
    )
    return _check("anchor event", False, detail, facts)


def _address_bytes(record: dict[str, Any]) -> bytes:
    return bytes.fromhex(str(record["sender"])[2:])


def _check_canonical(chain: Chain, found: Any, facts: dict[str, Any]) -> Check:
    canonical = chain.w3.eth.get_block(int(found["blockNumber"]))
    if _hex(canonical["hash"]) != _hex(found["blockHash"]):
        detail = f"block {found['blockNumber']} is no longer on the canonical chain"
        return _check("anchor canonical", False, detail, facts)
    return _check(
        "anchor canonical", True, "the block is on the canonical chain", facts
    )


def _check_depth(
    chain: Chain, found: Any, record: dict[str, Any], facts: dict[str, Any]
) -> Check:
    needed = int(record.get("confirmations") or DEFAULT_CONFIRMATIONS)
    depth = int(chain.w3.eth.block_number) - int(found["blockNumber"]) + 1
    if depth < needed:
        detail = f"{depth} confirmations, {needed} needed"
        return _check("anchor confirmations", None, detail, facts)
    return _check("anchor confirmations", True, f"{depth} confirmations", facts)


def _check_time(
    chain: Chain, found: Any, record: dict[str, Any], facts: dict[str, Any]
) -> Check:
    block = chain.w3.eth.get_block(int(found["blockNumber"]))
    actual = iso(datetime.fromtimestamp(int(block["timestamp"]), UTC))
    recorded = record.get("block_time")
    if recorded is not None and parse_iso(recorded) != parse_iso(str(actual)):
        detail = f"block time differs (expected {recorded}, got {actual})"
        return _check("anchor time", False, detail, facts)
    check = _check("anchor time", True, f"anchored at {actual} (block time)", facts)
    check.facts["block_time"] = actual
    return check
