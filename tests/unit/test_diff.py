"""Item differences between two runs (a real SQLite store, rows written directly)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from notary import record
from notary.diff import diff_runs
from notary.errors import NotFoundError, UsageError
from notary.store import Store


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(f"sqlite:///{tmp_path / 'notary.db'}")


def _row(path: bytes, content: bytes | None, **fields: Any) -> dict[str, Any]:
    status = fields.pop("status", "ok" if content is not None else "error")
    size = len(content) if content is not None else 0
    values: dict[str, record.Value] = {
        "v": 1,
        "kind": "file",
        **record.name_fields("path", path),
        "size": size,
        "mtime_ns": 1,
        "salt": record.new_salt(),
    }
    values.update(fields)
    text = record.encode(values).decode("ascii") if content is not None else None
    return {
        "seq": 0,
        "path": path,
        "kind": "file",
        "status": status,
        "size": size,
        "record": text,
        "content_digest": hashlib.sha256(content).digest() if content else None,
        "record_digest": hashlib.sha256(text.encode()).digest() if text else None,
        "error": None if content is not None else "permission denied",
    }


def _run(
    store: Store, period: str, rows: list[dict[str, Any]], algo: str = "sha256"
) -> int:
    run = store.create_run(stream="s", period=period, algorithm=algo, source="[]")
    store.add_items(run.id or 0, [dict(r, seq=n) for n, r in enumerate(rows, 1)])
    return run.id or 0


def test_diff_identical_runs_only_salt_differs_is_empty(store: Store) -> None:
    rows = [_row(b"a.log", b"one"), _row(b"b.log", b"two")]
    first = _run(store, "2026-10", rows)
    second = _run(store, "2026-11", [_row(b"a.log", b"one"), _row(b"b.log", b"two")])

    result = diff_runs(store, first, second)

    assert result.is_empty
    assert result.unchanged == 2


def test_diff_added_removed_changed_by_path(store: Store) -> None:
    first = _run(
        store, "2026-10", [_row(b"a", b"1"), _row(b"b", b"2"), _row(b"c", b"3")]
    )
    second = _run(
        store, "2026-11", [_row(b"b", b"2"), _row(b"c", b"3!"), _row(b"d", b"4")]
    )

    result = diff_runs(store, first, second)

    assert result.added == ["d"]
    assert result.removed == ["a"]
    assert [c.path for c in result.changed] == ["c"]
    assert {"content_digest", "size"} <= set(result.changed[0].fields)
    assert result.unchanged == 1


def test_diff_mtime_only_is_metadata_change(store: Store) -> None:
    first = _run(store, "2026-10", [_row(b"a", b"same")])
    second = _run(store, "2026-11", [_row(b"a", b"same", mtime_ns=2)])

    result = diff_runs(store, first, second)

    assert result.changed == []
    assert [(c.path, c.fields) for c in result.metadata_changed] == [
        ("a", ["record.mtime_ns"])
    ]
    assert result.metadata_changed[0].before == {"record.mtime_ns": 1}


def test_diff_readable_then_unreadable_is_changed(store: Store) -> None:
    first = _run(store, "2026-10", [_row(b"a", b"data")])
    second = _run(store, "2026-11", [_row(b"a", None)])

    result = diff_runs(store, first, second)

    assert [c.path for c in result.changed] == ["a"]
    assert "status" in result.changed[0].fields


def test_diff_paths_matched_by_exact_bytes(store: Store) -> None:
    nfc, nfd = "caf\u00e9".encode(), "cafe\u0301".encode()
    first = _run(store, "2026-10", [_row(nfc, b"x"), _row(b"\xff", b"y")])
    second = _run(store, "2026-11", [_row(nfd, b"x"), _row(b"\xff", b"y")])

    result = diff_runs(store, first, second)

    assert result.added == ["cafe\u0301"]
    assert result.removed == ["caf\u00e9"]
    assert result.unchanged == 1


def test_diff_many_items_merge_in_path_order(store: Store) -> None:
    names = [f"f{n:05d}".encode() for n in range(12_000)]
    first = _run(store, "2026-10", [_row(n, n) for n in names[:-1]])
    second = _run(store, "2026-11", [_row(n, n) for n in names[1:]])

    result = diff_runs(store, first, second)

    assert (result.added, result.removed) == (["f11999"], ["f00000"])
    assert result.unchanged == 11_998


def test_diff_different_algorithms_raises_usage_error(store: Store) -> None:
    first = _run(store, "2026-10", [_row(b"a", b"1")])
    second = _run(store, "2026-11", [_row(b"a", b"1")], algo="sha512")

    with pytest.raises(UsageError, match="different hash algorithms"):
        diff_runs(store, first, second)


def test_diff_unknown_run_raises_not_found(store: Store) -> None:
    first = _run(store, "2026-10", [_row(b"a", b"1")])

    with pytest.raises(NotFoundError, match="run 99: no such run"):
        diff_runs(store, first, 99)


def test_diff_json_has_counts(store: Store) -> None:
    first = _run(store, "2026-10", [_row(b"a", b"1")])
    second = _run(store, "2026-11", [_row(b"b", b"1")])

    document = diff_runs(store, first, second).to_json()

    assert document["counts"] == {
        "added": 1,
        "removed": 1,
        "changed": 0,
        "metadata_changed": 0,
        "unchanged": 0,
    }
