"""Anchoring a run's root on an EVM chain, from submission to finality.

Each anchor is a row of the store's ``anchor`` table moving through these states:

    pending (no tx) ─submit─► submitted ─node accepts─► pending ─N blocks─► final
                                   ▲                           │
                                   └──── replace / re-send ◄───┘  (receipt timeout,
                                                                    reorg, dropped)

- A transaction is persisted (nonce, hash, fees) as ``submitted`` BEFORE it is
  broadcast, so a crash between the two never loses track of a nonce.
- No receipt within ``receipt_timeout`` seconds of the broadcast: the same nonce is sent
  again with both fees raised by one eighth (nodes demand at least 10 %).
- "nonce too low" first looks for our earlier transaction among the mined ones; only if
  another transaction took the nonce does the anchor get a new one.
- Final only after ``confirmations`` blocks, with the receipt's block hash equal to the
  canonical block at that height; after a reorganisation the anchor is pending again and
  is re-sent when the node no longer knows its transaction.

Anchoring never holds a run back: a run is complete with its TSA tokens; its anchor is
``pending`` until final. `upgrade_pending` advances every open anchor by one step and is
what the scheduler calls.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from eth_account.signers.local import LocalAccount
from web3.contract import Contract
from web3.exceptions import BlockNotFound
from web3.types import TxReceipt

from notary.anchor import tx
from notary.anchor.chain import (
    RPC_ERRORS,
    Chain,
    anchored_value,
    load_artefact,
    registry,
)
from notary.errors import AnchorError
from notary.store.models import Anchor, utcnow

logger = logging.getLogger(__name__)

SUBMITTED = "submitted"
PENDING = "pending"
FINAL = "final"
FAILED = "failed"
OPEN_STATES = (SUBMITTED, PENDING)
ANCHOR_STATES = (SUBMITTED, PENDING, FINAL, FAILED)

# How far back (blocks) to search the contract's events for a transaction of ours that
# took a nonce we no longer hold the hash of. Public RPC providers cap log ranges.
LOG_LOOKBACK = 5000

UNDERPRICED_MARK = "underpriced: "

# Columns a transaction sets on its row (restored when persisting it fails).
_SENT_FIELDS = (
    "tx_hash",
    "nonce",
    "max_fee_per_gas",
    "max_priority_fee_per_gas",
    "state",
    "attempts",
)

Saver = Callable[[Anchor], Anchor]
Clock = Callable[[], datetime]


class Anchorer:
    """Drive the anchors of one sender on one chain through their states.

    ``save`` persists a row and returns it (with its id); every transaction is saved
    before it is broadcast. Safe to share between threads: nonces come from the chain's
    lock-protected manager. Methods raise AnchorError (with tx hash and chain id) when
    the node fails; the row then keeps its last persisted state.
    """

    def __init__(
        self,
        chain: Chain,
        account: LocalAccount,
        contract: Contract,
        save: Saver,
        *,
        confirmations: int,
        receipt_timeout: float,
        nonce_floor: Callable[[int], int] | None = None,
        clock: Clock = utcnow,
    ) -> None:
        self.chain = chain
        self.account = account
        self.contract = contract
        self.save = save
        self.confirmations = max(1, confirmations)
        self.receipt_timeout = timedelta(seconds=receipt_timeout)
        self.nonces = chain.nonces(account.address)
        self.nonce_floor = nonce_floor
        self.clock = clock

    # entry points --------------------------------------------------------------------

    def new_anchor(self, run_id: int, root: bytes) -> Anchor:
        """Persist a pending anchor of ``root`` for a run (no transaction yet)."""
        row = Anchor(
            run_id=run_id,
            chain_id=self.chain.chain_id,
            contract=self.contract.address,
            root=root,
            sender=self.account.address,
            state=PENDING,
            confirmations_required=self.confirmations,
        )
        return self.save(row)

    def submit(self, row: Anchor) -> Anchor:
        """Sign with a fresh nonce and market fees, persist, then broadcast."""
        call = tx.anchor_call(self.contract, anchored_value(bytes(row.root)))
        gas = self._call(tx.estimate_gas, self.chain.w3, self.account.address, call)
        fees = self._call(tx.suggest_fees, self.chain.w3)
        with self.nonces.reserve(self.nonce_floor) as nonce:
            return self._send(row, nonce, fees, gas)

    def advance(self, row: Anchor) -> Anchor:
        """Take one step toward finality; return the row as persisted."""
        if row.state == SUBMITTED:
            return self._advance_submitted(row)
        if row.state == PENDING and row.tx_hash is None:
            return self.submit(row)
        if row.state == PENDING and row.block_hash is None:
            return self._advance_unmined(row)
        if row.state == PENDING:
            return self._advance_mined(row)
        return row

    # sending -------------------------------------------------------------------------

    def _send(self, row: Anchor, nonce: int, fees: tx.Fees, gas: int) -> Anchor:
        previous = row.tx_hash
        signed = tx.sign(
            self.account, self.chain.chain_id, self._call_for(row), nonce, gas, fees
        )
        kept = {key: getattr(row, key) for key in _SENT_FIELDS}
        row.tx_hash = tx.to_hex(signed.hash)
        row.nonce = nonce
        row.max_fee_per_gas = fees.max_fee
        row.max_priority_fee_per_gas = fees.priority
        row.state = SUBMITTED
        row.attempts += 1
        try:
            row = self.save(row)
        except Exception:
            # Not persisted, so never broadcast: the row is as it was before.
            for key, value in kept.items():
                setattr(row, key, value)
            raise
        logger.info(
            "anchor %s run %s: submitted tx %s nonce %s (attempt %s)",
            row.id,
            row.run_id,
            row.tx_hash,
            nonce,
            row.attempts,
        )
        outcome, message = tx.broadcast(self.chain, signed)
        return self._after_broadcast(row, outcome, message, previous)

    def _after_broadcast(
        self, row: Anchor, outcome: tx.Outcome, message: str, previous: str | None
    ) -> Anchor:
        if outcome in (tx.Outcome.ACCEPTED, tx.Outcome.KNOWN):
            return self._set(row, state=PENDING, last_error=None)
        if outcome is tx.Outcome.NONCE_TOO_LOW:
            return self._nonce_taken(row, previous)
        if outcome is tx.Outcome.NONCE_TOO_HIGH:
            return self._set(row, last_error=self._gap(row, message))
        if outcome is tx.Outcome.UNDERPRICED and previous is None:
            # A fresh nonce the pool already holds: another process's transaction.
            # Replacing it would knock that one out; take the next nonce instead.
            return self._set(
                row, state=PENDING, tx_hash=None, nonce=None, last_error=message
            )
        if outcome is tx.Outcome.UNDERPRICED:
            # The next step raises the fees (one bump per step, never a loop here).
            logger.warning(
                "anchor %s: tx %s underpriced (%s)", row.id, row.tx_hash, message
            )
            return self._set(row, last_error=f"{UNDERPRICED_MARK}{message}")
        logger.warning(
            "anchor %s: node refused tx %s (%s); it stays submitted",
            row.id,
            row.tx_hash,
            message,
        )
        return self._set(row, last_error=message)

    def _resend(self, row: Anchor) -> Anchor:
        """Broadcast the row's transaction again: same nonce, same fees."""
        fees = tx.Fees(row.max_fee_per_gas or 0, row.max_priority_fee_per_gas)
        return self._send_same_nonce(row, fees)

    def _replace(self, row: Anchor) -> Anchor:
        """Send the row's nonce again with both fees raised (a replacement)."""
        old = tx.Fees(row.max_fee_per_gas or 0, row.max_priority_fee_per_gas)
        market = self._call(tx.suggest_fees, self.chain.w3)
        fees = old.bumped().at_least(market)
        logger.warning(
            "anchor %s: replacing tx %s with raised fees (attempt %s, max fee %s -> %s "
            "wei)",
            row.id,
            row.tx_hash,
            row.attempts + 1,
            old.max_fee,
            fees.max_fee,
        )
        return self._send_same_nonce(row, fees)

    def _send_same_nonce(self, row: Anchor, fees: tx.Fees) -> Anchor:
        call = self._call_for(row)
        gas = self._call(tx.estimate_gas, self.chain.w3, self.account.address, call)
        assert row.nonce is not None
        return self._send(row, row.nonce, fees, gas)

    def _call_for(self, row: Anchor) -> dict[str, Any]:
        return tx.anchor_call(self.contract, anchored_value(bytes(row.root)))

    # nonce consumed ------------------------------------------------------------------

    def _nonce_taken(self, row: Anchor, previous: str | None) -> Anchor:
        """Handle a used nonce: our earlier tx mined it, or another tx did."""
        for candidate in (previous, row.tx_hash):
            found = candidate and self._call(tx.receipt, self.chain, candidate)
            if found:
                return self._adopt(row, found)
        mined = self._find_mined(row)
        if mined is not None:
            return self._adopt(row, mined)
        logger.warning(
            "anchor %s: nonce %s was used by another transaction; a new one follows",
            row.id,
            row.nonce,
        )
        # NOTE: no new submission from here: this may run while the nonce lock is held.
        return self._set(
            row, state=PENDING, tx_hash=None, nonce=None, last_error="nonce taken"
        )

    def _find_mined(self, row: Anchor) -> TxReceipt | None:
        """Return the receipt of our mined anchor of this root with the row's nonce."""
        logs = self._call(self._recent_logs, row)
        for log in logs:
            found = self._call(
                tx.receipt, self.chain, tx.to_hex(log["transactionHash"])
            )
            sent = self._call(self.chain.w3.eth.get_transaction, log["transactionHash"])
            if found is not None and sent["nonce"] == row.nonce:
                mined: TxReceipt = found
                return mined
        return None

    def _recent_logs(self, row: Anchor) -> list[Any]:
        latest = int(self.chain.w3.eth.block_number)
        sender_topic = bytes(12) + bytes.fromhex(self.account.address[2:])
        return list(
            self.chain.w3.eth.get_logs(
                {
                    "address": self.contract.address,
                    "fromBlock": max(0, latest - LOG_LOOKBACK),
                    "toBlock": latest,
                    # NOTE: hex strings: eth-tester matches no topic given as bytes.
                    "topics": [
                        tx.to_hex(tx.EVENT_TOPIC),
                        tx.to_hex(anchored_value(bytes(row.root))),
                        tx.to_hex(sender_topic),
                    ],
                }
            )
        )

    # waiting -------------------------------------------------------------------------

    def _advance_submitted(self, row: Anchor) -> Anchor:
        # Saved before broadcast: if the node knows the hash, the broadcast happened.
        assert row.tx_hash is not None
        if self._call(tx.is_known, self.chain, row.tx_hash):
            return self._set(row, state=PENDING, last_error=None)
        if (row.last_error or "").startswith(UNDERPRICED_MARK):
            return self._replace(row)
        return self._resend(row)

    def _advance_unmined(self, row: Anchor) -> Anchor:
        assert row.tx_hash is not None and row.nonce is not None
        found = self._call(tx.receipt, self.chain, row.tx_hash)
        if found is not None:
            return self._adopt(row, found)
        mined_nonce = self._call(
            self.chain.w3.eth.get_transaction_count, self.account.address, "latest"
        )
        if mined_nonce > row.nonce:
            row = self._nonce_taken(row, None)
            return self.submit(row) if row.tx_hash is None else row
        pending = self._call(
            self.chain.w3.eth.get_transaction_count, self.account.address, "pending"
        )
        if pending < row.nonce:
            # Queued behind a nonce nobody sends: it is never mined by waiting.
            gap = self._gap(row, f"the node's next nonce is {pending}")
            return row if row.last_error == gap else self._set(row, last_error=gap)
        if not self._call(tx.is_known, self.chain, row.tx_hash):
            logger.warning(
                "anchor %s: node dropped tx %s; re-sending", row.id, row.tx_hash
            )
            return self._resend(row)
        if self.clock() - row.updated_at >= self.receipt_timeout:
            logger.warning(
                "anchor %s: no receipt for tx %s within %s s",
                row.id,
                row.tx_hash,
                int(self.receipt_timeout.total_seconds()),
            )
            return self._replace(row)
        return row

    def _gap(self, row: Anchor, detail: str) -> str:
        """Return the error of a transaction with a nonce past the chain's next one."""
        logger.warning(
            "anchor %s: nonce %s is past the chain's next nonce of %s (%s)",
            row.id,
            row.nonce,
            self.account.address,
            detail,
        )
        return (
            f"nonce gap: nonce {row.nonce} of {self.account.address} is past the "
            f"chain's next nonce ({detail}); the nonces between are held by earlier "
            "anchors of the store (chain reset, or the key used elsewhere): it is "
            "mined only once they are used"
        )

    def _adopt(self, row: Anchor, found: TxReceipt) -> Anchor:
        """Record the block that mined our transaction, then check confirmations."""
        tx_hash = tx.to_hex(found["transactionHash"])
        if found["status"] != 1:
            logger.error("anchor %s: tx %s reverted on chain", row.id, tx_hash)
            return self._set(row, state=FAILED, tx_hash=tx_hash, last_error="reverted")
        log_index = self._event_index(row, found)
        row = self._set(
            row,
            state=PENDING,
            tx_hash=tx_hash,
            block_number=int(found["blockNumber"]),
            block_hash=tx.to_hex(found["blockHash"]),
            log_index=log_index,
            last_error=None,
        )
        logger.info(
            "anchor %s: tx %s mined in block %s", row.id, tx_hash, row.block_number
        )
        return self._advance_mined(row)

    def _event_index(self, row: Anchor, found: TxReceipt) -> int:
        value = anchored_value(bytes(row.root))
        for log in found["logs"]:
            topics = [bytes(topic) for topic in log["topics"]]
            if log["address"].lower() == self.contract.address.lower() and topics[
                :2
            ] == [tx.EVENT_TOPIC, value]:
                return int(log["logIndex"])
        raise AnchorError(
            f"anchor: tx {tx.to_hex(found['transactionHash'])} carries no Anchored "
            "event for this root",
            tx_hash=tx.to_hex(found["transactionHash"]),
            chain_id=self.chain.chain_id,
        )

    def _advance_mined(self, row: Anchor) -> Anchor:
        assert row.block_number is not None
        canonical = self._call(self._block, row.block_number)
        if canonical is None or tx.to_hex(canonical["hash"]) != row.block_hash:
            return self._reorganised(row)
        latest = int(self._call(lambda: self.chain.w3.eth.block_number))
        # NOTE: a chain that makes blocks only on demand (dev nodes, some consortium
        # chains) confirms nothing until other transactions arrive.
        if latest - row.block_number + 1 < row.confirmations_required:
            return row
        block_time = datetime.fromtimestamp(int(canonical["timestamp"]), UTC)
        row = self._set(row, state=FINAL, block_time=block_time)
        logger.info(
            "anchor %s run %s: final in block %s (%s confirmations) tx %s",
            row.id,
            row.run_id,
            row.block_number,
            row.confirmations_required,
            row.tx_hash,
        )
        return row

    def _block(self, number: int) -> Any:
        try:
            return self.chain.w3.eth.get_block(number)
        except BlockNotFound:
            return None

    def _reorganised(self, row: Anchor) -> Anchor:
        logger.warning(
            "anchor %s: block %s (%s) left the canonical chain; pending again",
            row.id,
            row.block_number,
            row.block_hash,
        )
        row = self._set(
            row,
            state=PENDING,
            block_number=None,
            block_hash=None,
            log_index=None,
            block_time=None,
        )
        return self._advance_unmined(row)

    # helpers -------------------------------------------------------------------------

    def _set(self, row: Anchor, **values: Any) -> Anchor:
        for key, value in values.items():
            setattr(row, key, value)
        return self.save(row)

    def _call(self, func: Callable[..., Any], *args: Any) -> Any:
        """Call the node through ``func``; translate its failures into AnchorError."""
        try:
            return func(*args)
        except RPC_ERRORS as exc:
            raise AnchorError(
                f"anchor: {self.chain.label}: {tx.error_text(exc)}",
                chain_id=self.chain.chain_id,
            ) from None


def deploy_registry(chain: Chain, account: LocalAccount, timeout: float) -> TxReceipt:
    """Deploy the RootRegistry contract from ``account``; return the mined receipt.

    Waits up to ``timeout`` seconds for the receipt. Raises AnchorError (with tx hash
    and chain id) when the node refuses the transaction, the receipt does not come, or
    the deployment fails.
    """
    artefact = load_artefact()
    factory = chain.w3.eth.contract(abi=artefact["abi"], bytecode=artefact["bytecode"])
    call = {"data": factory.constructor().data_in_transaction, "value": 0}
    try:
        gas = tx.estimate_gas(chain.w3, account.address, call)
        fees = tx.suggest_fees(chain.w3)
        with chain.nonces(account.address).reserve() as nonce:
            signed = tx.sign(account, chain.chain_id, call, nonce, gas, fees)
            chain.w3.eth.send_raw_transaction(signed.raw_transaction)
        tx_hash = tx.to_hex(signed.hash)
        logger.info(
            "anchor: deploying RootRegistry on %s in tx %s", chain.label, tx_hash
        )
        found = chain.w3.eth.wait_for_transaction_receipt(signed.hash, timeout=timeout)
    except RPC_ERRORS as exc:
        raise AnchorError(
            f"anchor: deploying on {chain.label} failed: {tx.error_text(exc)}",
            chain_id=chain.chain_id,
        ) from None
    return _check_deployed(chain, found)


def _check_deployed(chain: Chain, found: TxReceipt) -> TxReceipt:
    tx_hash = tx.to_hex(found["transactionHash"])
    address = found.get("contractAddress")
    if found["status"] != 1 or not address or not chain.w3.eth.get_code(address):
        raise AnchorError(
            f"anchor: deployment tx {tx_hash} failed on chain {chain.chain_id}",
            tx_hash=tx_hash,
            chain_id=chain.chain_id,
        )
    logger.info("anchor: RootRegistry at %s on chain %s", address, chain.chain_id)
    return found


def check_registry(chain: Chain, address: str) -> Contract:
    """Return the registry at ``address``; raise AnchorError if no contract is there."""
    try:
        code = chain.w3.eth.get_code(registry(chain, address).address)
    except RPC_ERRORS as exc:
        raise AnchorError(
            f"anchor: {chain.label}: {tx.error_text(exc)}", chain_id=chain.chain_id
        ) from None
    if not code:
        raise AnchorError(
            f"anchor: no contract at {address} on chain {chain.chain_id}",
            hint="run `notary anchor deploy` and set [anchor] contract",
            contract=address,
            chain_id=chain.chain_id,
        )
    if tx.to_hex(code) != load_artefact()["deployedBytecode"].lower():
        logger.warning(
            "anchor: the code at %s differs from this notary's RootRegistry build",
            address,
        )
    return registry(chain, address)
