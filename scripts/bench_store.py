#!/usr/bin/env python3
"""Benchmark the store: bulk item inserts on SQLite and PostgreSQL, and a whole run.

1. items/s inserting ITEMS item rows with ``Store.add_items`` (the pipeline's batches),
   into a SQLite file and into a throwaway PostgreSQL server (started on loopback from
   the machine's binaries, as the tests do);
2. a whole run of ITEMS items through ``notary.attest`` (collect, hash, store, tree,
   timestamp with the built-in TSA) from a synthetic in-memory source, with its wall
   time and the process's peak RSS.

Not part of the test suite. Example: ``python scripts/bench_store.py --items 1000000``.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from notary import attest as pipeline
from notary import record
from notary.config import TSAConfig, load
from notary.sources import Entry, Hashed, Skipped
from notary.store import Store
from tests import services


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument(
        "--batch", type=int, default=500, help="rows per add_items call"
    )
    parser.add_argument(
        "--only", choices=["sqlite", "postgresql", "run"], action="append", default=[]
    )
    return parser.parse_args()


def item_rows(count: int) -> Iterator[dict[str, Any]]:
    """Yield realistic item rows: a canonical record and two SHA-256 digests."""
    for n in range(count):
        path = f"logs/2026/11/host-{n % 97:02d}/part-{n:08d}.log.gz".encode()
        fields: dict[str, record.Value] = {
            "v": 1,
            "kind": "file",
            **record.name_fields("path", path),
            "size": 4096 + n % 1000,
            "mtime_ns": 1_764_547_200_000_000_000 + n,
            "salt": record.new_salt(),
        }
        text = record.encode(fields)
        yield {
            "seq": n + 1,
            "path": path,
            "kind": "file",
            "status": "ok",
            "size": 4096 + n % 1000,
            "record": text.decode("ascii"),
            "content_digest": hashlib.sha256(path).digest(),
            "record_digest": hashlib.sha256(text).digest(),
            "error": None,
        }


def bench_inserts(url: str, count: int, batch: int) -> float:
    """Insert ``count`` rows in batches; return rows/s (building rows excluded)."""
    store = Store(url)
    run = store.create_run(
        stream="bench", period="2026-11", algorithm="sha256", source="[]"
    )
    spent = 0.0
    pending: list[dict[str, Any]] = []
    for row in item_rows(count):
        pending.append(row)
        if len(pending) == batch:
            started = time.perf_counter()
            store.add_items(run.id or 0, pending)
            spent += time.perf_counter() - started
            pending = []
    started = time.perf_counter()
    store.add_items(run.id or 0, pending)
    spent += time.perf_counter() - started
    assert store.item_count(run.id or 0) == count
    store.close()
    return count / spent


class SyntheticSource:
    """ITEMS in-memory objects of 64 bytes each (no I/O: measures the pipeline)."""

    description = "synthetic"

    def __init__(self, count: int) -> None:
        self.count = count

    def scan(self) -> Iterator[Entry | Skipped]:
        for n in range(self.count):
            path = f"objects/{n:09d}".encode()
            yield Entry(path=path, kind="object", fields={"size": 64})

    def digest(self, entry: Entry, algorithm: str) -> Hashed:
        data = entry.path.ljust(64, b".")
        digest = hashlib.new(algorithm, data).digest()
        return Hashed(entry, "ok", digest, len(data), {"size": len(data)})


def bench_run(url: str, count: int, home: Path) -> tuple[float, int]:
    """Attest ``count`` synthetic items; return (seconds, items in the run)."""
    settings = load(home)
    settings.tsas = [TSAConfig(name="builtin", url="builtin")]
    store = Store(url)
    pipeline.open_sources = lambda paths, **_options: [SyntheticSource(count)]  # type: ignore[assignment]
    started = time.perf_counter()
    summary = pipeline.attest(
        settings, store, stream="bench-run", period="2026-11", paths=["synthetic"]
    )
    elapsed = time.perf_counter() - started
    assert summary.run.state == "complete", summary.run.state
    return elapsed, summary.run.item_count


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    args = parse_args()
    only = set(args.only) or {"sqlite", "postgresql", "run"}
    work = Path(tempfile.mkdtemp(prefix="notary-bench-store-"))
    try:
        if only != {"run"}:
            print(f"items {args.items:,}  batch {args.batch}  cpus {os.cpu_count()}")
        if "sqlite" in only:
            rate = bench_inserts(
                f"sqlite:///{work / 'insert.db'}", args.items, args.batch
            )
            print(f"sqlite      insert  {rate:>10,.0f} items/s")
        if "postgresql" in only:
            print(f"postgresql  insert  {bench_postgres(args):>10,.0f} items/s")
        if "run" in only:
            whole_run(args, only, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def bench_postgres(args: argparse.Namespace) -> float:
    server = services.start_postgres()
    try:
        return bench_inserts(server.create_database(), args.items, args.batch)
    finally:
        server.stop()


def whole_run(args: argparse.Namespace, only: set[str], work: Path) -> None:
    if only != {"run"}:
        # Peak RSS is per process: measure the whole run in a fresh one.
        command = [
            sys.executable,
            __file__,
            "--items",
            str(args.items),
            "--only",
            "run",
        ]
        subprocess.run(command, check=True)
        return
    seconds, items = bench_run(f"sqlite:///{work / 'run.db'}", args.items, work)
    print(
        f"whole run (sqlite)  {items:,} items in {seconds:.1f} s "
        f"= {items / seconds:,.0f} items/s; peak RSS {peak_rss_mib():,.0f} MiB"
    )


if __name__ == "__main__":
    main()
