"""Fixtures for anchoring tests: a fresh in-process eth-tester chain per test."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3.contract import Contract

from notary.anchor.anchorer import Anchorer, deploy_registry
from notary.anchor.chain import Chain, new_builtin_chain, registry
from notary.anchor.service import store_saver
from notary.store import Store
from notary.store.models import COMPLETE, utcnow

CONFIRMATIONS = 3
RECEIPT_TIMEOUT = 60.0


class Clock:
    """A settable clock for receipt timeouts."""

    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def chain() -> Chain:
    return new_builtin_chain()


@pytest.fixture
def account(chain: Chain) -> LocalAccount:
    """The chain's first funded test account (a public eth-tester key)."""
    assert chain.tester is not None
    key = chain.tester.backend.account_keys[0]
    signer: LocalAccount = Account.from_key(key.to_bytes())
    return signer


@pytest.fixture
def contract(chain: Chain, account: LocalAccount) -> Contract:
    found = deploy_registry(chain, account, timeout=10)
    return registry(chain, found["contractAddress"])


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(f"sqlite:///{tmp_path / 'notary.db'}")


@pytest.fixture
def make_run(store: Store) -> Callable[[str], tuple[int, bytes]]:
    """Create a complete run whose root is SHA-256 of ``label``; return (id, root)."""

    def make(label: str = "run") -> tuple[int, bytes]:
        root = hashlib.sha256(label.encode()).digest()
        run = store.create_run(
            stream=label, period="2026-11", algorithm="sha256", source="[]"
        )
        assert run.id is not None
        store.update_run(run.id, root=root, state=COMPLETE)
        return run.id, root

    return make


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def anchorer(
    chain: Chain, account: LocalAccount, contract: Contract, store: Store, clock: Clock
) -> Anchorer:
    return Anchorer(
        chain,
        account,
        contract,
        store_saver(store),
        confirmations=CONFIRMATIONS,
        receipt_timeout=RECEIPT_TIMEOUT,
        clock=clock,
    )
