"""Anchor transactions: fees, signing, broadcasting, reading what the node answers."""

from __future__ import annotations

import enum
import logging
import re
from dataclasses import dataclass
from typing import Any

import requests
from eth_account.datastructures import SignedTransaction
from eth_account.signers.local import LocalAccount
from hexbytes import HexBytes
from web3 import Web3
from web3.contract import Contract
from web3.exceptions import TransactionNotFound
from web3.types import TxReceipt

from notary.anchor.chain import RPC_ERRORS, Chain

logger = logging.getLogger(__name__)

# Geth and most nodes refuse a same-nonce replacement unless both fees rise by 10 %;
# 12.5 % (one eighth) clears that with room for rounding.
BUMP_NUMERATOR = 9
BUMP_DENOMINATOR = 8
# Headroom over the node's gas estimate, in percent.
GAS_HEADROOM = 25
# Priority fee when the node has no eth_maxPriorityFeePerGas (wei).
FALLBACK_PRIORITY_FEE = 1_000_000_000

EVENT_SIGNATURE = "Anchored(bytes32,address,uint256)"
EVENT_TOPIC = bytes(Web3.keccak(text=EVENT_SIGNATURE))


@dataclass(frozen=True)
class Fees:
    """Fees of one transaction in wei; ``priority`` None means a legacy gasPrice tx."""

    max_fee: int
    priority: int | None

    def bumped(self) -> Fees:
        """Return fees raised by one eighth (at least 1 wei), as replacements need."""
        return Fees(
            _bump(self.max_fee), None if self.priority is None else _bump(self.priority)
        )

    def at_least(self, other: Fees) -> Fees:
        """Return the higher of each fee (a replacement never pays under the market)."""
        if self.priority is None or other.priority is None:
            return Fees(max(self.max_fee, other.max_fee), None)
        return Fees(
            max(self.max_fee, other.max_fee), max(self.priority, other.priority)
        )


def _bump(value: int) -> int:
    return max(value + 1, -(-value * BUMP_NUMERATOR // BUMP_DENOMINATOR))


class Outcome(enum.Enum):
    """What the node said to a broadcast."""

    ACCEPTED = "accepted"
    KNOWN = "known"
    NONCE_TOO_LOW = "nonce too low"
    NONCE_TOO_HIGH = "nonce too high"
    UNDERPRICED = "underpriced"
    REJECTED = "rejected"


_TESTER_NONCE = re.compile(r"invalid transaction nonce: expected (\d+), but got (\d+)")


def classify(message: str) -> Outcome:
    """Classify a node's broadcast error message (geth, anvil, eth-tester wording)."""
    text = message.lower()
    tester = _TESTER_NONCE.search(text)
    if tester:
        expected, got = int(tester.group(1)), int(tester.group(2))
        return Outcome.NONCE_TOO_LOW if got < expected else Outcome.NONCE_TOO_HIGH
    if "nonce too low" in text or "nonce has already been used" in text:
        return Outcome.NONCE_TOO_LOW
    if (
        "already known" in text
        or "known transaction" in text
        or "already imported" in text
    ):
        return Outcome.KNOWN
    if "underpriced" in text:
        return Outcome.UNDERPRICED
    return Outcome.REJECTED


def suggest_fees(w3: Web3) -> Fees:
    """Return market fees: EIP-1559 (2 x base fee + tip) or a legacy gas price."""
    base = w3.eth.get_block("latest").get("baseFeePerGas")
    if base is None:
        return Fees(int(w3.eth.gas_price), None)
    try:
        priority = int(w3.eth.max_priority_fee)
    except RPC_ERRORS:
        priority = FALLBACK_PRIORITY_FEE
    return Fees(2 * int(base) + priority, priority)


def anchor_call(contract: Contract, value: bytes) -> dict[str, Any]:
    """Return ``to`` and ``data`` of a call to ``anchor(value)``."""
    data = contract.encode_abi("anchor", [value])
    return {"to": contract.address, "data": data, "value": 0}


def estimate_gas(w3: Web3, sender: str, call: dict[str, Any]) -> int:
    """Return the node's gas estimate for ``call`` plus headroom."""
    estimate = int(w3.eth.estimate_gas({"from": sender, **call}))  # type: ignore[typeddict-item]
    return estimate + estimate * GAS_HEADROOM // 100


def sign(
    account: LocalAccount,
    chain_id: int,
    call: dict[str, Any],
    nonce: int,
    gas: int,
    fees: Fees,
) -> SignedTransaction:
    """Sign ``call`` (pure: no I/O); the same inputs always give the same hash."""
    tx: dict[str, Any] = {**call, "chainId": chain_id, "nonce": nonce, "gas": gas}
    if fees.priority is None:
        tx["gasPrice"] = fees.max_fee
    else:
        tx.update(type=2, maxFeePerGas=fees.max_fee, maxPriorityFeePerGas=fees.priority)
    signed: SignedTransaction = account.sign_transaction(tx)
    return signed


def broadcast(chain: Chain, signed: SignedTransaction) -> tuple[Outcome, str]:
    """Send a signed transaction; return the outcome and the node's message.

    Transport failures are returned as REJECTED, never raised.
    """
    try:
        chain.w3.eth.send_raw_transaction(signed.raw_transaction)
    except RPC_ERRORS as exc:
        message = error_text(exc)
        return classify(message), message
    return Outcome.ACCEPTED, ""


def error_text(exc: Exception) -> str:
    """Return a log-safe description of a node or transport error."""
    # NOTE: a transport error's text may hold the RPC URL (and its API key): name only.
    if isinstance(exc, requests.RequestException):
        return type(exc).__name__
    response = getattr(exc, "rpc_response", None)
    if isinstance(response, dict) and isinstance(response.get("error"), dict):
        return str(response["error"].get("message", response["error"]))
    args = getattr(exc, "args", ())
    if args and isinstance(args[0], dict) and "message" in args[0]:
        return str(args[0]["message"])
    return f"{type(exc).__name__}: {exc}"


def receipt(chain: Chain, tx_hash: str) -> TxReceipt | None:
    """Return the receipt of ``tx_hash``, or None while it is not mined."""
    try:
        return chain.w3.eth.get_transaction_receipt(HexBytes(tx_hash))
    except TransactionNotFound:
        return None


def is_known(chain: Chain, tx_hash: str) -> bool:
    """Return True when the node knows ``tx_hash`` (in its pool or mined)."""
    try:
        chain.w3.eth.get_transaction(HexBytes(tx_hash))
    except TransactionNotFound:
        return False
    return True


def to_hex(value: bytes | str) -> str:
    """Return ``0x``-prefixed lowercase hex."""
    if isinstance(value, str):
        value = HexBytes(value)
    return "0x" + bytes(value).hex()
