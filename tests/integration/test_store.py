"""The store on SQLite and PostgreSQL (the `store` fixture runs each test on both)."""

from datetime import timedelta

import pytest

from notary.errors import NotFoundError, RunConflictError
from notary.store import Store
from notary.store.models import COMPLETE


def _run(store: Store, period: str = "2026-11", owner: str | None = None) -> int:
    run = store.create_run(
        stream="logs",
        period=period,
        algorithm="sha256",
        source="{}",
        owner=owner,
        lease=timedelta(minutes=5) if owner else None,
    )
    assert run.id is not None
    return run.id


def test_create_run_twice_for_period_conflicts(store: Store) -> None:
    _run(store)

    with pytest.raises(RunConflictError, match="already has run 1"):
        _run(store)


def test_claim_held_by_other_owner_refused(store: Store) -> None:
    run_id = _run(store, owner="host-a:1")

    assert not store.claim(run_id, "host-b:2", timedelta(minutes=5))
    assert store.claim(run_id, "host-a:1", timedelta(minutes=5))


def test_claim_expired_lease_taken_over(store: Store) -> None:
    run_id = _run(store, owner="host-a:1")
    store.update_run(
        run_id, claim_expires=store.get_run(run_id).created_at - timedelta(1)
    )

    assert store.claim(run_id, "host-b:2", timedelta(minutes=5))
    assert store.get_run(run_id).claim_owner == "host-b:2"


def test_add_items_bulk_round_trip_keeps_exact_path_bytes(store: Store) -> None:
    run_id = _run(store)
    rows = [
        {
            "seq": n,
            "path": f"f{n}".encode() + b"\xff",
            "kind": "file",
            "status": "ok",
            "size": 5_000_000_000,
            "record": "{}",
            "content_digest": bytes(32),
            "record_digest": bytes(32),
        }
        for n in range(2500)
    ]

    store.add_items(run_id, rows)

    assert store.item_count(run_id) == 2500
    assert b"f7\xff" in store.item_paths(run_id)
    assert next(store.iter_items(run_id)).size == 5_000_000_000


def test_previous_completed_skips_incomplete_runs(store: Store) -> None:
    first = _run(store, "2026-09")
    _run(store, "2026-10")
    store.update_run(first, state=COMPLETE, root=bytes(32))

    previous = store.previous_completed("logs", "2026-11")

    assert previous is not None and previous.id == first


def test_get_run_missing_is_not_found(store: Store) -> None:
    with pytest.raises(NotFoundError, match="run 42: no such run"):
        store.get_run(42)


def test_store_first_open_by_many_processes_migrates_once(database_url: str) -> None:
    import subprocess
    import sys

    code = "import sys; from notary.store import Store; Store(sys.argv[1]).close()"

    processes = [
        subprocess.Popen(
            [sys.executable, "-c", code, database_url], stderr=subprocess.PIPE
        )
        for _ in range(6)
    ]
    results = [
        (p.wait(timeout=120), p.stderr.read() if p.stderr else b"") for p in processes
    ]

    assert [rc for rc, _ in results] == [0] * 6, results
