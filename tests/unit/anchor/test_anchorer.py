"""The anchoring state machine on eth-tester: finality, replacement, nonces, reorgs."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from eth_account.signers.local import LocalAccount
from web3.contract import Contract

from notary.anchor import tx
from notary.anchor.anchorer import FINAL, PENDING, SUBMITTED, Anchorer
from notary.anchor.chain import Chain
from notary.anchor.service import store_nonces
from notary.errors import AnchorError
from notary.store import Store
from notary.store.models import Anchor
from tests.unit.anchor.conftest import CONFIRMATIONS, RECEIPT_TIMEOUT, Clock

MakeRun = Callable[..., tuple[int, bytes]]


def _tester(chain: Chain) -> object:
    assert chain.tester is not None
    return chain.tester


def _mine(chain: Chain, blocks: int = 1) -> None:
    assert chain.tester is not None
    chain.tester.mine_blocks(blocks)


def _stored(store: Store, row: Anchor) -> Anchor:
    (fresh,) = [a for a in store.anchors() if a.id == row.id]
    return fresh


def _start(anchorer: Anchorer, make_run: MakeRun, label: str = "run") -> Anchor:
    run_id, root = make_run(label)
    return anchorer.submit(anchorer.new_anchor(run_id, root))


def test_anchorer_automine_final_after_confirmations(
    anchorer: Anchorer, chain: Chain, make_run: MakeRun, store: Store
) -> None:
    row = _start(anchorer, make_run)

    row = anchorer.advance(row)
    waiting = row.state
    _mine(chain, CONFIRMATIONS - 1)
    row = anchorer.advance(row)

    assert waiting == PENDING
    assert row.state == FINAL
    assert row.block_time is not None and row.log_index == 0
    assert _stored(store, row).state == FINAL


def test_anchorer_submit_persists_before_broadcast(
    anchorer: Anchorer, make_run: MakeRun, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[str, str | None]] = []
    real = tx.broadcast

    def spy(chain: Chain, signed: object) -> tuple[tx.Outcome, str]:
        (row,) = store.anchors()
        seen.append((row.state, row.tx_hash))
        return real(chain, signed)  # type: ignore[arg-type]

    monkeypatch.setattr(tx, "broadcast", spy)

    row = _start(anchorer, make_run)

    assert seen == [(SUBMITTED, row.tx_hash)]
    assert row.state == PENDING


def test_anchorer_receipt_timeout_replaces_with_bumped_fees(
    anchorer: Anchorer, chain: Chain, make_run: MakeRun, clock: Clock
) -> None:
    chain.tester.disable_auto_mine_transactions()  # type: ignore[union-attr]
    row = _start(anchorer, make_run)
    first = (row.tx_hash, row.nonce, row.max_fee_per_gas, row.max_priority_fee_per_gas)

    unchanged = anchorer.advance(row).tx_hash
    clock.advance(RECEIPT_TIMEOUT + 1)
    row = anchorer.advance(row)
    _mine(chain)
    row = anchorer.advance(row)

    assert unchanged == first[0]
    assert row.tx_hash != first[0] and row.nonce == first[1]
    assert row.max_fee_per_gas is not None and first[2] is not None
    assert row.max_priority_fee_per_gas is not None and first[3] is not None
    assert row.max_fee_per_gas * 100 >= first[2] * 112
    assert row.max_priority_fee_per_gas * 100 >= first[3] * 112
    assert row.block_number is not None and row.attempts == 2
    assert tx.receipt(chain, first[0] or "") is None


def test_anchorer_fresh_nonce_held_by_pool_takes_next_nonce(
    anchorer: Anchorer,
    chain: Chain,
    account: LocalAccount,
    make_run: MakeRun,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    chain.tester.disable_auto_mine_transactions()  # type: ignore[union-attr]
    taken = chain.w3.eth.get_transaction_count(account.address)
    # Another process's transaction holds the nonce in the pool; eth-tester would
    # silently replace it, so the node's refusal is played by a stand-in once.
    chain.w3.eth.send_transaction(
        {"from": account.address, "to": account.address, "value": 1, "nonce": taken}
    )
    real = tx.broadcast
    answers = [(tx.Outcome.UNDERPRICED, "replacement transaction underpriced")]

    def refuse_once(chain: Chain, signed: object) -> tuple[tx.Outcome, str]:
        return answers.pop() if answers else real(chain, signed)  # type: ignore[arg-type]

    monkeypatch.setattr(tx, "broadcast", refuse_once)
    row = _start(anchorer, make_run)
    refused = (row.state, row.tx_hash)

    row = anchorer.advance(row)
    # eth-tester queues no future nonce: the new one is accepted once `taken` is mined.
    _mine(chain)
    row = anchorer.advance(row)
    _mine(chain)
    row = anchorer.advance(row)

    assert refused == (PENDING, None)
    assert row.nonce == taken + 1
    assert row.state == PENDING and row.block_number is not None


def test_anchorer_underpriced_raises_fees_on_next_step(
    anchorer: Anchorer, make_run: MakeRun, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = tx.broadcast
    answers = [(tx.Outcome.UNDERPRICED, "replacement transaction underpriced")]

    def refuse_once(chain: Chain, signed: object) -> tuple[tx.Outcome, str]:
        return answers.pop() if answers else real(chain, signed)  # type: ignore[arg-type]

    row = _start(anchorer, make_run)
    monkeypatch.setattr(tx, "broadcast", refuse_once)
    row = anchorer._resend(row)
    refused = (row.state, row.max_fee_per_gas or 0)

    row = anchorer.advance(row)

    assert refused[0] == SUBMITTED
    assert row.state == PENDING and row.last_error is None
    assert (row.max_fee_per_gas or 0) * 100 >= refused[1] * 112


def test_anchorer_nonce_too_low_adopts_earlier_mined_tx(
    anchorer: Anchorer, chain: Chain, make_run: MakeRun, clock: Clock
) -> None:
    chain.tester.disable_auto_mine_transactions()  # type: ignore[union-attr]
    row = _start(anchorer, make_run)
    original = row.tx_hash
    _mine(chain)
    # The replacement races the original, which is mined first: the node says
    # "nonce too low" and the original must be recognised as ours.
    row.tx_hash, row.state = "0x" + "ab" * 32, SUBMITTED

    row = anchorer.advance(row)

    assert row.tx_hash == original
    assert row.state == PENDING and row.block_number is not None


def test_anchorer_nonce_taken_by_another_tx_gets_new_nonce(
    anchorer: Anchorer, chain: Chain, make_run: MakeRun, account: LocalAccount
) -> None:
    run_id, root = make_run()
    row = anchorer.new_anchor(run_id, root)
    with anchorer.nonces.reserve() as nonce:
        row.nonce, row.tx_hash, row.state = nonce, "0x" + "cd" * 32, SUBMITTED
        row.max_fee_per_gas, row.max_priority_fee_per_gas = 3 * 10**9, 10**9
        row = anchorer.save(row)
        # Another transaction of the same key takes that nonce first.
        chain.w3.eth.send_transaction(
            {"from": account.address, "to": account.address, "value": 1, "nonce": nonce}
        )

    row = anchorer.advance(row)
    freed = (row.state, row.tx_hash)
    row = anchorer.advance(anchorer.advance(row))

    assert freed == (PENDING, None)
    assert row.nonce == nonce + 1
    assert row.state == PENDING and row.block_number is not None


def test_anchorer_concurrent_anchors_distinct_nonces(
    anchorer: Anchorer, chain: Chain, make_run: MakeRun
) -> None:
    rows = [anchorer.new_anchor(*make_run(f"run-{k}")) for k in range(6)]
    results: list[Anchor] = []
    errors: list[BaseException] = []

    def work(row: Anchor) -> None:
        try:
            results.append(anchorer.submit(row))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(row,)) for row in rows]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    _mine(chain, CONFIRMATIONS)
    final = [anchorer.advance(row) for row in results]

    nonces = sorted(row.nonce for row in results if row.nonce is not None)
    assert errors == []
    assert nonces == list(range(nonces[0], nonces[0] + 6))
    assert {row.state for row in final} == {FINAL}


def test_anchorer_reorg_returns_to_pending_and_resends(
    anchorer: Anchorer, chain: Chain, make_run: MakeRun
) -> None:
    tester = chain.tester
    assert tester is not None
    tester.disable_auto_mine_transactions()
    snapshot = tester.take_snapshot()
    row = _start(anchorer, make_run)
    _mine(chain)
    row = anchorer.advance(row)
    orphaned = row.block_hash

    tester.revert_to_snapshot(snapshot)
    _mine(chain, 2)
    row = anchorer.advance(row)
    after_reorg = (row.state, row.block_hash)
    _mine(chain)
    row = anchorer.advance(row)
    _mine(chain, CONFIRMATIONS)
    row = anchorer.advance(row)

    assert orphaned is not None
    assert after_reorg == (PENDING, None)
    assert row.state == FINAL
    assert row.block_hash != orphaned


def test_anchorer_registry_records_first_anchoring_time(
    anchorer: Anchorer, chain: Chain, contract: Contract, make_run: MakeRun
) -> None:
    run_id, root = make_run()
    first = anchorer.advance(anchorer.submit(anchorer.new_anchor(run_id, root)))
    _mine(chain, 5)
    anchorer.submit(anchorer.new_anchor(run_id, root))
    first_block = chain.w3.eth.get_block(first.block_number or 0)

    anchored_at = contract.functions.anchoredAt(root).call()
    never = contract.functions.anchoredAt(b"\x00" * 32).call()

    assert anchored_at == first_block["timestamp"]
    assert never == 0


def _record_sent(
    store: Store, run_id: int, root: bytes, chain: Chain, **row: object
) -> None:
    """Store a final anchor as an earlier chain instance (or deployment) left it."""
    values: dict[str, object] = {
        "run_id": run_id,
        "chain_id": chain.chain_id,
        "contract": "0x" + "22" * 20,
        "root": root,
        "tx_hash": "0x" + "ee" * 32,
        "state": FINAL,
    }
    values.update(row)
    with store.session() as session:
        session.add(Anchor(**values))  # type: ignore[arg-type]


def test_anchorer_nonce_recorded_by_earlier_chain_moves_past_highest(
    anchorer: Anchorer,
    chain: Chain,
    account: LocalAccount,
    make_run: MakeRun,
    store: Store,
) -> None:
    pending = chain.w3.eth.get_transaction_count(account.address, "pending")
    old_id, old_root = make_run("old")
    for nonce in (pending, pending + 1):
        _record_sent(
            store, old_id, old_root, chain, sender=account.address, nonce=nonce
        )
    anchorer.nonce_floor = store_nonces(store, chain.chain_id, account.address)

    row = _start(anchorer, make_run, "new")

    assert row.nonce == pending + 2
    assert _stored(store, row).tx_hash == row.tx_hash
    assert (row.last_error or "").startswith(f"nonce gap: nonce {pending + 2} of")


def test_anchorer_nonce_collision_is_anchor_error_and_row_unchanged(
    anchorer: Anchorer,
    chain: Chain,
    account: LocalAccount,
    make_run: MakeRun,
    store: Store,
) -> None:
    pending = chain.w3.eth.get_transaction_count(account.address, "pending")
    old_id, old_root = make_run("old")
    _record_sent(store, old_id, old_root, chain, sender=account.address, nonce=pending)
    run_id, root = make_run("new")
    # No nonce policy: another process reserved the same nonce at the same moment.
    row = anchorer.new_anchor(run_id, root)

    with pytest.raises(AnchorError, match=rf"nonce {pending} of .* already recorded"):
        anchorer.submit(row)

    assert (row.state, row.tx_hash, row.nonce, row.attempts) == (PENDING, None, None, 0)
    assert _stored(store, row).state == PENDING and _stored(store, row).tx_hash is None
