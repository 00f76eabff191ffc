"""Anchoring as the rest of notary uses it: settings and the store in, dicts out.

`anchor_run` is what the pipeline calls after sealing a run, `upgrade_pending` what the
scheduler calls on every tick (and ``notary anchor upgrade`` by hand), `status` what
``notary anchor status`` lists, `deploy` what ``notary anchor deploy`` does.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from sqlalchemy import func, select
from sqlmodel import col
from web3.types import Wei

from notary.anchor.anchorer import (
    FAILED,
    FINAL,
    OPEN_STATES,
    PENDING,
    Anchorer,
    check_registry,
    deploy_registry,
)
from notary.anchor.chain import (
    BUILTIN,
    LOCAL_CHAIN_IDS,
    Chain,
    connect,
    rpc_host,
)
from notary.anchor.receipt import anchor_record
from notary.anchor.tx import to_hex
from notary.anchor.wallet import load_account
from notary.config import Settings
from notary.errors import AnchorError, ConfigError, NotaryError, UsageError
from notary.store import Store
from notary.store.models import Anchor, utcnow

logger = logging.getLogger(__name__)

_registry_lock = threading.Lock()

# Ether sent from the builtin chain's funded test account to a configured key.
BUILTIN_FUNDING_WEI = 10**18


def anchor_run(settings: Settings, store: Store, run_id: int) -> dict[str, Any]:
    """Anchor a sealed run's root; return its status entry (see `status`).

    Idempotent: a run that already has a live anchor gets that anchor advanced one step.
    On the builtin chain the anchor is mined and confirmed at once. Node failures after
    the anchor row exists are kept on the row (``last_error``) for `upgrade_pending`;
    raises AnchorError or ConfigError only when no anchor could be recorded at all.
    """
    run = store.get_run(run_id)
    if run.root is None:
        raise UsageError(f"run {run_id}: has no root to anchor yet", run=run_id)
    live = [row for row in store.anchors(run_id) if row.state != FAILED]
    try:
        anchorer = open_anchorer(settings, store)
    except AnchorError as exc:
        if live:
            raise
        return describe(_record_unsent(settings, store, run_id, bytes(run.root), exc))
    if live:
        return describe(_upgrade_one(anchorer, live[0]))
    row = anchorer.new_anchor(run_id, bytes(run.root))
    logger.info("anchor %s run %s: root %s", row.id, run_id, bytes(run.root).hex())
    row = _step(anchorer, row)
    if anchorer.chain.is_builtin:
        row = _confirm_locally(anchorer, row)
    return describe(row)


def upgrade_pending(settings: Settings, store: Store) -> list[dict[str, Any]]:
    """Advance every submitted or pending anchor by one step; return their entries.

    Connects only when there is something to do. Anchors of another chain than the
    configured one are skipped with a warning.
    """
    rows = _open_rows(store)
    if not rows:
        return []
    anchorer = open_anchorer(settings, store)
    results = []
    for row in rows:
        if row.chain_id != anchorer.chain.chain_id:
            logger.warning(
                "anchor %s: chain %s is not the configured chain %s; skipped",
                row.id,
                row.chain_id,
                anchorer.chain.chain_id,
            )
            continue
        results.append(describe(_upgrade_one(anchorer, row)))
    return results


def status(settings: Settings, store: Store) -> list[dict[str, Any]]:
    """Return every anchor of the store, oldest first (no chain access)."""
    return [describe(row) for row in store.anchors()]


def describe(row: Anchor) -> dict[str, Any]:
    """Return an anchor's bundle record plus its bookkeeping (id, run, attempts)."""
    entry = anchor_record(row)
    entry.update(
        id=row.id,
        run=row.run_id,
        state=row.state,
        nonce=row.nonce,
        attempts=row.attempts,
        last_error=row.last_error,
        local=row.chain_id in LOCAL_CHAIN_IDS,
    )
    return entry


def deploy(
    settings: Settings, rpc_url: str, chain_id: int | None = None
) -> dict[str, Any]:
    """Deploy the RootRegistry contract via ``rpc_url``; return its address and chain.

    Raises UsageError for the builtin chain (it lives inside one process and deploys its
    own contract), ConfigError without a signing key, AnchorError when deploying fails.
    """
    if rpc_url == BUILTIN:
        raise UsageError(
            "anchor: the builtin chain lives inside one process and deploys its own "
            "contract; deploy to a node's RPC URL",
        )
    account = _require_account(settings)
    chain = connect(rpc_url, chain_id)
    found = deploy_registry(chain, account, settings.anchor.receipt_timeout)
    return {
        "contract": found["contractAddress"],
        "chain_id": chain.chain_id,
        "tx_hash": to_hex(found["transactionHash"]),
        "block_number": int(found["blockNumber"]),
        "sender": account.address,
        "rpc": rpc_host(rpc_url),
        "local": chain.is_local,
    }


def open_anchorer(settings: Settings, store: Store) -> Anchorer:
    """Connect to the configured chain and return an Anchorer persisting to ``store``.

    Raises ConfigError (no key, no contract address) or AnchorError (node unreachable,
    wrong chain id, no contract at the address).
    """
    config = settings.anchor
    chain = connect(config.rpc_url, config.chain_id)
    if chain.is_builtin:
        account = _builtin_account(chain, load_account(config, settings.home))
        contract = check_registry(chain, _builtin_registry(chain, account))
    else:
        account = _require_account(settings)
        if not config.contract:
            raise ConfigError(
                "anchor: no contract address configured",
                hint="run `notary anchor deploy --rpc URL` and set [anchor] contract",
            )
        contract = check_registry(chain, config.contract)
    return Anchorer(
        chain,
        account,
        contract,
        store_saver(store),
        confirmations=config.confirmations,
        receipt_timeout=config.receipt_timeout,
        nonce_floor=lambda: _nonce_floor(store, chain.chain_id, account.address),
    )


# steps --------------------------------------------------------------------------------


def _step(anchorer: Anchorer, row: Anchor) -> Anchor:
    """Advance ``row`` once; a node failure is recorded on the row, not raised."""
    try:
        return anchorer.advance(row)
    except AnchorError as exc:
        logger.warning("anchor %s: %s (will retry)", row.id, exc.message)
        row.last_error = exc.message
        return anchorer.save(row)


def _upgrade_one(anchorer: Anchorer, row: Anchor) -> Anchor:
    chain = anchorer.chain
    if chain.is_builtin and row.created_at < chain.started_at:
        # NOTE: the builtin chain dies with its process; its transactions are gone.
        row.state = FAILED
        row.last_error = "the builtin chain of an earlier process is gone"
        return anchorer.save(row)
    try:
        return _step(_for_contract(anchorer, row.contract), row)
    except NotaryError as exc:
        logger.warning("anchor %s: %s", row.id, exc.message)
        return row


def _for_contract(anchorer: Anchorer, address: str) -> Anchorer:
    """Return an Anchorer like ``anchorer`` but for the registry at ``address``."""
    if address.lower() == anchorer.contract.address.lower():
        return anchorer
    contract = check_registry(anchorer.chain, address)
    return Anchorer(
        anchorer.chain,
        anchorer.account,
        contract,
        anchorer.save,
        confirmations=anchorer.confirmations,
        receipt_timeout=anchorer.receipt_timeout.total_seconds(),
        nonce_floor=anchorer.nonce_floor,
        clock=anchorer.clock,
    )


def _confirm_locally(anchorer: Anchorer, row: Anchor) -> Anchor:
    """Mine the blocks a builtin-chain anchor needs, then take it to final."""
    assert anchorer.chain.tester is not None
    for _ in range(3):
        if row.state in (FINAL, FAILED):
            break
        if row.state == PENDING and row.block_hash is not None:
            anchorer.chain.tester.mine_blocks(row.confirmations_required)
        row = _step(anchorer, row)
    return row


def _record_unsent(
    settings: Settings, store: Store, run_id: int, root: bytes, error: AnchorError
) -> Anchor:
    """Keep a pending anchor while the node is unreachable, so a later pass sends it.

    Needs [anchor] chain_id and contract; without them ``error`` is raised.
    """
    config = settings.anchor
    if config.chain_id is None or not config.contract:
        raise error
    account = _require_account(settings)
    logger.warning("run %s: anchor kept pending: %s", run_id, error.message)
    row = Anchor(
        run_id=run_id,
        chain_id=config.chain_id,
        contract=config.contract,
        root=root,
        sender=account.address,
        state=PENDING,
        confirmations_required=config.confirmations,
        last_error=error.message,
    )
    saved: Anchor = store_saver(store)(row)
    return saved


def _open_rows(store: Store) -> list[Anchor]:
    return [row for row in store.anchors() if row.state in OPEN_STATES]


# persistence --------------------------------------------------------------------------


def store_saver(store: Store) -> Callable[[Anchor], Anchor]:
    """Return a function that writes an anchor row (insert or update) and returns it."""

    def save(row: Anchor) -> Anchor:
        row.updated_at = utcnow()
        with store.session() as session:
            merged = session.merge(row)
            session.flush()
            row.id = merged.id
        return row

    return save


def _nonce_floor(store: Store, chain_id: int, sender: str) -> int:
    """Return one past the highest nonce of an open anchor of ``sender`` (0: none)."""
    with store.session() as session:
        query = select(func.max(col(Anchor.nonce))).where(
            col(Anchor.chain_id) == chain_id,
            col(Anchor.sender) == sender,
            col(Anchor.state).in_(OPEN_STATES),
        )
        highest = session.scalar(query)
    return 0 if highest is None else int(highest) + 1


# accounts and the builtin chain ------------------------------------------------------


def _require_account(settings: Settings) -> LocalAccount:
    account = load_account(settings.anchor, settings.home)
    if account is None:
        raise ConfigError(
            "anchor: no signing key",
            hint=f"put a hex private key in {settings.anchor.key_env}, or set [anchor] "
            f"keystore and its password in {settings.anchor.password_env}",
        )
    return account


def _builtin_account(chain: Chain, account: LocalAccount | None) -> LocalAccount:
    """Return the configured key (funded on first use) or the chain's test account."""
    assert chain.tester is not None
    funded = chain.tester.get_accounts()[0]
    if account is None:
        test_key = chain.tester.backend.account_keys[0]
        builtin: LocalAccount = Account.from_key(test_key.to_bytes())
        return builtin
    if chain.w3.eth.get_balance(account.address) < BUILTIN_FUNDING_WEI // 2:
        chain.w3.eth.send_transaction(
            {"from": funded, "to": account.address, "value": Wei(BUILTIN_FUNDING_WEI)}
        )
    return account


def _builtin_registry(chain: Chain, account: LocalAccount) -> str:
    """Deploy the registry on the builtin chain once per process; return its address."""
    with _registry_lock:
        if chain.registry_address is None:
            found = deploy_registry(chain, account, timeout=30)
            chain.registry_address = str(found["contractAddress"])
        return chain.registry_address
