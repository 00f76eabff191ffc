"""One run per (stream, period) and leases, on SQLite and PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from notary import schedule
from notary.errors import RunConflictError
from notary.store import Store
from notary.store.models import utcnow

THREADS = 8


def _race(action: Callable[[int], Any]) -> list[Any]:
    """Run ``action(n)`` in THREADS threads released at once; return each outcome."""
    barrier = threading.Barrier(THREADS)
    outcomes: list[Any] = [None] * THREADS

    def work(n: int) -> None:
        barrier.wait()
        try:
            outcomes[n] = action(n)
        except Exception as exc:  # the outcome under test
            outcomes[n] = exc

    threads = [threading.Thread(target=work, args=(n,)) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return outcomes


def _new_run(
    store: Store, owner: str | None = None, lease: timedelta | None = None
) -> int:
    run = store.create_run(
        stream="logs",
        period="2026-11",
        algorithm="sha256",
        source="[]",
        owner=owner,
        lease=lease,
    )
    return run.id or 0


def test_create_run_racing_threads_exactly_one_row(store: Store) -> None:
    outcomes = _race(lambda n: _new_run(store, owner=f"worker-{n}"))

    created = [o for o in outcomes if isinstance(o, int)]
    conflicts = [o for o in outcomes if isinstance(o, RunConflictError)]
    assert len(created) == 1
    assert len(conflicts) == THREADS - 1
    assert len(store.list_runs("logs")) == 1


def test_claim_live_lease_refused_expired_lease_taken_over(store: Store) -> None:
    run_id = _new_run(store, owner="a", lease=timedelta(minutes=10))

    refused = store.claim(run_id, "b", timedelta(minutes=10))
    store.update_run(run_id, claim_expires=utcnow() - timedelta(seconds=1))
    taken = store.claim(run_id, "b", timedelta(minutes=10))
    renewed_by_old_holder = store.claim(run_id, "a", timedelta(minutes=10))

    assert (refused, taken, renewed_by_old_holder) == (False, True, False)
    assert store.get_run(run_id).claim_owner == "b"


def test_claim_expired_lease_racing_threads_exactly_one_winner(store: Store) -> None:
    run_id = _new_run(store, owner="dead", lease=timedelta(minutes=10))
    store.update_run(run_id, claim_expires=utcnow() - timedelta(seconds=1))

    outcomes = _race(lambda n: store.claim(run_id, f"worker-{n}", timedelta(minutes=5)))

    assert outcomes.count(True) == 1
    winner = f"worker-{outcomes.index(True)}"
    assert store.get_run(run_id).claim_owner == winner


def _dead_owner() -> str:
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    return f"{schedule.socket.gethostname()}:{done.stdout.strip()}"


def test_expire_dead_claim_then_one_claimant_wins(store: Store) -> None:
    run_id = _new_run(store, owner=_dead_owner(), lease=timedelta(hours=1))
    run = store.get_run(run_id)

    expired = schedule.expire_dead_claim(store, run)
    again = schedule.expire_dead_claim(store, run)
    outcomes = _race(lambda n: store.claim(run_id, f"worker-{n}", timedelta(minutes=5)))

    assert (expired, again) == (True, False)
    assert outcomes.count(True) == 1


def test_expire_dead_claim_live_or_foreign_owner_untouched(store: Store) -> None:
    live = _new_run(store, owner=schedule.owner_id(), lease=timedelta(hours=1))
    other = store.create_run(
        stream="logs",
        period="2026-10",
        algorithm="sha256",
        source="[]",
        owner="elsewhere.example:123",
        lease=timedelta(hours=1),
    )

    assert not schedule.expire_dead_claim(store, store.get_run(live))
    assert not schedule.expire_dead_claim(store, other)
    assert not store.claim(other.id or 0, "me", timedelta(minutes=1))


@pytest.mark.parametrize("state", ["hashing", "awaiting_timestamp"])
def test_store_round_trips_run_times_as_utc(store: Store, state: str) -> None:
    run_id = _new_run(store, owner="a", lease=timedelta(minutes=1))
    retry = utcnow() + timedelta(minutes=5)

    run = store.update_run(run_id, state=state, next_retry_at=retry)

    assert run.next_retry_at == retry
    assert run.claim_expires is not None
    assert run.claim_expires.utcoffset() == timedelta(0)
