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
from sqlalchemy.exc import IntegrityError
from sqlmodel import col
from web3.types import Wei

from notary.anchor.anchorer import (
    FAILED,
    FINAL,
    OPEN_STATES,
    PENDING,
    UNDERPRICED_MARK,
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
from notary.store.models import COMPLETE, Anchor, utcnow

logger = logging.getLogger(__name__)

_registry_lock = threading.Lock()

# Ether sent from the builtin chain's funded test account to a configured key.
BUILTIN_FUNDING_WEI = 10**18


def anchor_run(settings: Settings, store: Store, run_id: int) -> dict[str, Any]:
    """Anchor a sealed run's root; return its status entry (see `status`).

    Idempotent: a run that already has a live anchor gets that anchor advanced one step.
    On the builtin chain the anchor is mined and confirmed at once. Node failures after
    the anchor row exists are kept on the row (``last_error``) for `upgrade_pending`.
    Raises AnchorError (facts: ``run``, ``reason``) when no anchor could be recorded at
    all (no or invalid signing key, wrong chain, no contract): the run is then listed by
    `missing_anchors` and anchored by `upgrade_pending` once the cause is fixed.
    """
    run = store.get_run(run_id)
    if run.root is None:
        raise UsageError(f"run {run_id}: has no root to anchor yet", run=run_id)
    root = bytes(run.root)
    live = [row for row in store.anchors(run_id) if row.state != FAILED]
    try:
        try:
            anchorer = open_anchorer(settings, store)
        except AnchorError as exc:
            if live:
                raise
            return describe(_record_unsent(settings, store, run_id, root, exc))
        if live:
            return describe(_upgrade_one(anchorer, live[0]))
        return describe(_anchor_new(anchorer, run_id, root))
    except ConfigError as exc:
        raise _not_anchored(run_id, exc) from None
    except NotaryError:
        raise
    except Exception as exc:
        raise _not_anchored(run_id, _internal(exc)) from None


def missing_anchors(settings: Settings, store: Store) -> list[int]:
    """Return the complete runs of streams with ``anchor = true`` that have no anchor.

    Such a run lost its anchor before any row was recorded (no signing key, wrong
    chain id, ...); `upgrade_pending` anchors it once a key is available.
    """
    streams = {stream.name for stream in settings.streams if stream.anchor}
    if not streams:
        return []
    anchored = {row.run_id for row in store.anchors()}
    return [
        run.id
        for run in store.list_runs()
        if run.id is not None
        and run.stream in streams
        and run.state == COMPLETE
        and run.root is not None
        and run.id not in anchored
    ]


def upgrade_pending(settings: Settings, store: Store) -> list[dict[str, Any]]:
    """Advance every open anchor by one step and anchor `missing_anchors`.

    Returns the entries of the anchors handled (see `upgrade` for what was skipped).
    """
    anchors: list[dict[str, Any]] = upgrade(settings, store)["anchors"]
    return anchors


def upgrade(settings: Settings, store: Store) -> dict[str, Any]:
    """One pass: advance open anchors, anchor runs that miss one; report both.

    Returns ``{"anchors": [entry, ...], "skipped": [{"run", "anchor", "reason"}]}``.
    Connects only when there is something to do. An anchor of another chain than the
    configured one is re-targeted when it was never sent, else marked failed. One
    anchor's failure is recorded on its row (``last_error``) and never stops the
    others. Raises ConfigError when the configuration is wrong (no or invalid key,
    chain id, contract), AnchorError when the node fails while anchors are open (their
    ``last_error`` then says why); with no open anchor, runs without an anchor are
    then reported as skipped with the reason.
    """
    rows = _open_rows(store)
    missing = missing_anchors(settings, store)
    report: dict[str, Any] = {"anchors": [], "skipped": []}
    if not rows and not missing:
        return report
    try:
        anchorer = open_anchorer(settings, store)
    except NotaryError as exc:
        for row in rows:
            _note(store_saver(store), row, exc.message)
        if rows or isinstance(exc, ConfigError):
            raise
        report["skipped"] = [_skip(run_id, None, exc.message) for run_id in missing]
        return report
    for row in rows:
        try:
            row = _upgrade_one(anchorer, row)
        except Exception as exc:  # one anchor never stops the others
            error = exc if isinstance(exc, NotaryError) else _internal(exc)
            logger.warning("anchor %s: skipped: %s", row.id, error.message)
            report["skipped"].append(_skip(row.run_id, row.id, error.message))
            continue
        report["anchors"].append(describe(row))
    for run_id in missing:
        try:
            root = store.get_run(run_id).root
            if root is None:
                continue
            row = _anchor_new(anchorer, run_id, bytes(root))
        except Exception as exc:  # one run never stops the others
            error = exc if isinstance(exc, NotaryError) else _internal(exc)
            logger.warning("run %s: anchoring failed: %s", run_id, error.message)
            report["skipped"].append(_skip(run_id, None, error.message))
            continue
        report["anchors"].append(describe(row))
    return report


def status(settings: Settings, store: Store) -> list[dict[str, Any]]:
    """Return every anchor of the store, oldest first (no chain access)."""
    return [describe(row) for row in store.anchors()]


def missing_report(settings: Settings, store: Store) -> list[dict[str, Any]]:
    """Return `missing_anchors` with run, stream, period and why (no chain access).

    The reason is the key problem when the signing key is missing or invalid, else
    that the next `upgrade_pending` pass anchors the run.
    """
    missing = missing_anchors(settings, store)
    if not missing:
        return []
    reason = "not anchored yet: the next `notary anchor upgrade` (or scheduler pass)"
    reason += " anchors it"
    try:
        if settings.anchor.rpc_url == BUILTIN:
            load_account(settings.anchor, settings.home)
        else:
            _require_account(settings)
    except ConfigError as exc:
        reason = exc.message.removeprefix("anchor: ")
    entries = []
    for run_id in missing:
        run = store.get_run(run_id)
        entries.append(
            {
                "run": run_id,
                "stream": run.stream,
                "period": run.period,
                "state": "not anchored",
                "reason": reason,
            }
        )
    return entries


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

    Raises ConfigError (no or invalid key, no contract address, wrong chain id; checked
    before connecting where possible) or AnchorError (node unreachable, no contract at
    the address).
    """
    config = settings.anchor
    if config.rpc_url == BUILTIN:
        chain = connect(config.rpc_url, config.chain_id)
        account = _builtin_account(chain, load_account(config, settings.home))
        contract = check_registry(chain, _builtin_registry(chain, account))
    else:
        account = _require_account(settings)
        if not config.contract:
            raise ConfigError(
                "anchor: no contract address configured",
                hint="run `notary anchor deploy --rpc URL` and set [anchor] contract",
            )
        chain = connect(config.rpc_url, config.chain_id)
        contract = check_registry(chain, config.contract)
    return Anchorer(
        chain,
        account,
        contract,
        store_saver(store),
        confirmations=config.confirmations,
        receipt_timeout=config.receipt_timeout,
        nonce_floor=store_nonces(store, chain.chain_id, account.address),
    )


# steps --------------------------------------------------------------------------------


def _anchor_new(anchorer: Anchorer, run_id: int, root: bytes) -> Anchor:
    row = anchorer.new_anchor(run_id, root)
    logger.info("anchor %s run %s: root %s", row.id, run_id, root.hex())
    row = _step(anchorer, row)
    if anchorer.chain.is_builtin:
        row = _confirm_locally(anchorer, row)
    return row


def _step(anchorer: Anchorer, row: Anchor) -> Anchor:
    """Advance ``row`` once; a failure is recorded on the row, not raised.

    ``last_error`` always tells the outcome of this attempt: an error of an earlier
    attempt is cleared once a step succeeds (the underpriced mark stays: it steers the
    next step).
    """
    previous = row.last_error
    if previous and not previous.startswith(UNDERPRICED_MARK):
        row.last_error = None
    try:
        result = anchorer.advance(row)
    except NotaryError as exc:
        logger.warning("anchor %s: %s (will retry)", row.id, exc.message)
        return _note(anchorer.save, row, exc.message)
    except Exception as exc:
        error = _internal(exc)
        logger.error("anchor %s: %s", row.id, error.message)
        return _note(anchorer.save, row, error.message)
    if previous is not None and result.last_error is None:
        result = anchorer.save(result)
    return result


def _note(save: Callable[[Anchor], Anchor], row: Anchor, message: str) -> Anchor:
    """Record ``message`` as the row's last error; never raises (logged instead)."""
    row.last_error = message
    try:
        return save(row)
    except Exception as exc:  # the store itself failed: keep going with the others
        logger.error("anchor %s: cannot record its error (%s)", row.id, exc)
        return row


def _internal(exc: Exception) -> AnchorError:
    # NOTE: only the type: a foreign message may hold an RPC URL with its API key.
    return AnchorError(
        f"anchor: internal error: {type(exc).__name__}", error=type(exc).__name__
    )


def _not_anchored(run_id: int, exc: NotaryError) -> AnchorError:
    reason = exc.message.removeprefix("anchor: ")
    return AnchorError(
        f"anchor: run {run_id} not anchored: {reason}",
        hint=(exc.hint + "; then " if exc.hint else "fix it, then ")
        + "`notary anchor upgrade` (or the scheduler's next pass) anchors it",
        run=run_id,
        reason=reason,
    )


def _skip(run_id: int | None, anchor_id: int | None, reason: str) -> dict[str, Any]:
    return {"run": run_id, "anchor": anchor_id, "reason": reason}


def _upgrade_one(anchorer: Anchorer, row: Anchor) -> Anchor:
    chain = anchorer.chain
    stale = row.chain_id == chain.chain_id and row.created_at < chain.started_at
    if chain.is_builtin and stale:
        # NOTE: the builtin chain dies with its process; its transactions are gone.
        row.state = FAILED
        row.last_error = "the builtin chain of an earlier process is gone"
        return anchorer.save(row)
    if row.chain_id != chain.chain_id:
        row = _retarget(anchorer, row)
        if row.state == FAILED:
            return row
    try:
        target = _for_contract(anchorer, row.contract)
    except NotaryError as exc:
        logger.warning("anchor %s: %s", row.id, exc.message)
        return _note(anchorer.save, row, exc.message)
    return _step(target, row)


def _retarget(anchorer: Anchorer, row: Anchor) -> Anchor:
    """Move a never-sent anchor to the configured chain; fail one sent elsewhere."""
    chain_id = anchorer.chain.chain_id
    if row.tx_hash is None:
        logger.warning(
            "anchor %s run %s: never sent on chain %s; re-targeted to the configured "
            "chain %s, contract %s",
            row.id,
            row.run_id,
            row.chain_id,
            chain_id,
            anchorer.contract.address,
        )
        row.chain_id = chain_id
        row.contract = anchorer.contract.address
        row.sender = anchorer.account.address
        row.nonce = None
        row.state = PENDING
        row.confirmations_required = anchorer.confirmations
        row.last_error = None
        return anchorer.save(row)
    message = (
        f"tx {row.tx_hash} was made for chain {row.chain_id}, but the configured chain "
        f"is {chain_id}: no longer followed (configure chain {row.chain_id} to follow "
        "it)"
    )
    logger.error("anchor %s run %s: %s", row.id, row.run_id, message)
    row.state = FAILED
    row.last_error = message
    return anchorer.save(row)


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
        raise _not_anchored(run_id, error)
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
    """Return a function that writes an anchor row (insert or update) and returns it.

    The function raises AnchorError (facts: anchor, run, chain_id, sender, nonce) when
    the row breaks a constraint, such as a nonce already recorded for its sender.
    """

    def save(row: Anchor) -> Anchor:
        row.updated_at = utcnow()
        try:
            with store.session() as session:
                merged = session.merge(row)
                session.flush()
                row.id = merged.id
        except IntegrityError:
            raise AnchorError(
                f"anchor: cannot record anchor {row.id} of run {row.run_id}: nonce "
                f"{row.nonce} of {row.sender} on chain {row.chain_id} is already "
                "recorded (or the run is gone)",
                anchor=row.id,
                run=row.run_id,
                chain_id=row.chain_id,
                sender=row.sender,
                nonce=row.nonce,
            ) from None
        return row

    return save


def store_nonces(store: Store, chain_id: int, sender: str) -> Callable[[int], int]:
    """Return the nonce policy of ``sender`` on ``chain_id`` for `NonceManager.reserve`.

    The nonce is at least one past the highest nonce of an open anchor (saved by another
    process, not yet seen by the node). When it is one that a recorded anchor already
    holds (a chain reset or reused, a key shared with another deployment), it moves past
    the highest recorded nonce of that sender on that chain.
    """

    def adjust(proposed: int) -> int:
        nonce = max(proposed, _highest_nonce(store, chain_id, sender, OPEN_STATES) + 1)
        with store.session() as session:
            taken = session.scalar(
                select(func.count()).where(
                    col(Anchor.chain_id) == chain_id,
                    col(Anchor.sender) == sender,
                    col(Anchor.nonce) == nonce,
                )
            )
        if not taken:
            return nonce
        highest = _highest_nonce(store, chain_id, sender, None)
        logger.warning(
            "anchor: nonce %s of %s on chain %s is already recorded (chain reset, or "
            "the key used elsewhere?); using %s",
            nonce,
            sender,
            chain_id,
            highest + 1,
        )
        return highest + 1

    return adjust


def _highest_nonce(
    store: Store, chain_id: int, sender: str, states: tuple[str, ...] | None
) -> int:
    """Return the highest recorded nonce of ``sender`` (in ``states``), -1 for none."""
    query = select(func.max(col(Anchor.nonce))).where(
        col(Anchor.chain_id) == chain_id, col(Anchor.sender) == sender
    )
    if states is not None:
        query = query.where(col(Anchor.state).in_(states))
    with store.session() as session:
        highest = session.scalar(query)
    return -1 if highest is None else int(highest)


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
