"""Differences between the items of two runs, matched by exact path bytes.

An item of both runs is:

- ``changed`` when what was attested about its bytes differs: the content digest, the
  kind, the status (``ok``/``unstable``/``error``) or the size;
- ``metadata_changed`` when its content is the same but other record fields differ
  (``mtime_ns``, an S3 ``version_id``, ``last_modified``, object-lock fields…);
- unchanged otherwise. The per-item ``salt`` is random in every run and never compared.

Both runs' items are read in path order and merged, so memory stays flat for runs of
millions of items. Runs hashed with different algorithms cannot be compared.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from notary import record
from notary.errors import UsageError
from notary.store import Item, Store

IGNORED_FIELDS = frozenset({"salt"})
CONTENT_FIELDS = ("kind", "status", "size", "content_digest")


@dataclass
class Change:
    """One item present in both runs with differing fields (``before``/``after``)."""

    path: str
    fields: list[str]
    before: dict[str, Any]
    after: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "fields": self.fields,
            "before": self.before,
            "after": self.after,
        }


@dataclass
class RunDiff:
    """The difference from run ``run_a`` to run ``run_b``."""

    run_a: int
    run_b: int
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    changed: list[Change] = field(default_factory=list)
    metadata_changed: list[Change] = field(default_factory=list)
    unchanged: int = 0

    @property
    def is_empty(self) -> bool:
        return not (self.added or self.removed or self.changed or self.metadata_changed)

    def to_json(self) -> dict[str, Any]:
        return {
            "run_a": self.run_a,
            "run_b": self.run_b,
            "added": self.added,
            "removed": self.removed,
            "changed": [c.to_json() for c in self.changed],
            "metadata_changed": [c.to_json() for c in self.metadata_changed],
            "unchanged": self.unchanged,
            "counts": {
                "added": len(self.added),
                "removed": len(self.removed),
                "changed": len(self.changed),
                "metadata_changed": len(self.metadata_changed),
                "unchanged": self.unchanged,
            },
        }


def item_facts(item: Item) -> dict[str, Any]:
    """Return what is compared of an item: content facts and its record fields."""
    facts: dict[str, Any] = {
        "kind": item.kind,
        "status": item.status,
        "size": item.size,
        "content_digest": item.content_digest.hex() if item.content_digest else None,
    }
    if item.record:
        fields = json.loads(item.record)
        # Facts already compared above are not listed twice.
        facts.update({f"record.{k}": v for k, v in fields.items() if k not in facts})
    for name in IGNORED_FIELDS:
        facts.pop(f"record.{name}", None)
    return facts


def compare_items(a: Item, b: Item) -> Change | None:
    """Return how ``b`` differs from ``a`` (same path), or None when it does not."""
    before, after = item_facts(a), item_facts(b)
    names = sorted(
        k for k in before.keys() | after.keys() if before.get(k) != after.get(k)
    )
    if not names:
        return None
    path = record.display_name(bytes(a.path))
    return Change(
        path,
        names,
        {k: before.get(k) for k in names},
        {k: after.get(k) for k in names},
    )


def is_content_change(change: Change) -> bool:
    return any(name in CONTENT_FIELDS for name in change.fields)


def diff_runs(store: Store, run_a: int, run_b: int) -> RunDiff:
    """Compare the items of two stored runs.

    Raises NotFoundError for an unknown run, UsageError when their algorithms differ.
    """
    first, second = store.get_run(run_a), store.get_run(run_b)
    if first.algorithm != second.algorithm:
        raise UsageError(
            f"runs {run_a} and {run_b}: different hash algorithms "
            f"({first.algorithm}, {second.algorithm}); contents cannot be compared",
            run_a=run_a,
            run_b=run_b,
        )
    result = RunDiff(run_a, run_b)
    for a, b in _merge(store.iter_items(run_a), store.iter_items(run_b)):
        _classify(result, a, b)
    return result


def _classify(result: RunDiff, a: Item | None, b: Item | None) -> None:
    if a is None:
        assert b is not None
        result.added.append(record.display_name(bytes(b.path)))
        return
    if b is None:
        result.removed.append(record.display_name(bytes(a.path)))
        return
    change = compare_items(a, b)
    if change is None:
        result.unchanged += 1
    elif is_content_change(change):
        result.changed.append(change)
    else:
        result.metadata_changed.append(change)


def _merge(
    first: Iterator[Item], second: Iterator[Item]
) -> Iterator[tuple[Item | None, Item | None]]:
    """Pair two path-ordered item streams by path (None where one lacks the path)."""
    a, b = next(first, None), next(second, None)
    while a is not None or b is not None:
        if b is None or (a is not None and bytes(a.path) < bytes(b.path)):
            yield a, None
            a = next(first, None)
        elif a is None or bytes(b.path) < bytes(a.path):
            yield None, b
            b = next(second, None)
        else:
            yield a, b
            a, b = next(first, None), next(second, None)
