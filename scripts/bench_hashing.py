#!/usr/bin/env python3
"""Benchmark hashing: one large file against OpenSSL, then many small files.

The large file is read from the page cache (it is read once before timing), hashed by
``openssl dgst`` and by notary in the same run; the ratio compares their rates. The
small files go through the real path: FileSource.scan, then hash_entries with
FileSource.digest. Files live in a temporary directory removed at the end. Not part of
the test suite. Wall-clock rates need an otherwise idle machine; CPU rates less so.
"""

from __future__ import annotations

import argparse
import functools
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from notary.hashing import CHUNK_SIZE, hash_entries, hash_file
from notary.sources import Entry
from notary.sources.filesystem import FileSource

T = TypeVar("T")
MIB = 1 << 20


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--big-mib", type=int, default=1024, help="large file size (0: skip)"
    )
    parser.add_argument(
        "--small-files", type=int, default=100_000, help="how many (0: skip)"
    )
    parser.add_argument("--small-size", type=int, default=4096, help="bytes each")
    parser.add_argument(
        "--workers", default="1,2,4", help="comma-separated worker counts to try"
    )
    parser.add_argument("--algorithm", default="sha256")
    parser.add_argument("--repeat", type=int, default=3, help="runs; best is kept")
    parser.add_argument("--dir", help="parent of the temporary directory")
    return parser.parse_args(argv)


def timed(func: Callable[[], T]) -> tuple[T, float, float]:
    """Run ``func``; return its result, wall seconds and CPU seconds (with children)."""
    wall = time.perf_counter()
    cpu = _cpu_seconds()
    result = func()
    return result, time.perf_counter() - wall, _cpu_seconds() - cpu


def _cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def best(func: Callable[[], T], repeat: int) -> tuple[T, float, float]:
    runs = [timed(func) for _ in range(repeat)]
    return runs[-1][0], min(r[1] for r in runs), min(r[2] for r in runs)


def write_big(path: Path, mib: int) -> None:
    block = os.urandom(MIB)
    with path.open("wb") as out:
        for n in range(mib):
            out.write(block[n % 256 :] + block[: n % 256])


def write_small(root: Path, count: int, size: int) -> None:
    data = os.urandom(size)
    for n in range(count):
        folder = root / f"d{n // 1000:04d}"
        if n % 1000 == 0:
            folder.mkdir(parents=True)
        (folder / f"f{n:07d}").write_bytes(data)


def openssl_digest(openssl: str, path: Path, algorithm: str) -> str:
    done = subprocess.run(
        [openssl, "dgst", f"-{algorithm}", "-r", str(path)],
        check=True,
        capture_output=True,
        text=True,
    )
    return done.stdout.split()[0]


def bench_big(args: argparse.Namespace, folder: Path) -> list[tuple[str, str, str]]:
    path = folder / "big.bin"
    write_big(path, args.big_mib)
    hash_file(path, args.algorithm)  # warm the page cache
    size = args.big_mib * MIB
    rows = []
    openssl = shutil.which("openssl")
    ours, wall, cpu = best(lambda: hash_file(path, args.algorithm), args.repeat)
    rows.append(("notary hash_file, wall / CPU", _rates(size, wall, cpu), ""))
    if openssl is None:
        rows.append(("openssl dgst", "openssl not installed", ""))
        return rows
    theirs, o_wall, o_cpu = best(
        lambda: openssl_digest(openssl, path, args.algorithm), args.repeat
    )
    if theirs != ours[0].hex():
        sys.exit("bench_hashing: notary and openssl disagree on the large file")
    rows.append(("openssl dgst, wall / CPU", _rates(size, o_wall, o_cpu), ""))
    ratio = f"{o_wall / wall:.2f}x / {o_cpu / cpu:.2f}x"
    rows.append(("notary / openssl rate, wall / CPU", ratio, ">= 0.9x"))
    path.unlink()
    return rows


def bench_small(args: argparse.Namespace, folder: Path) -> list[tuple[str, str, str]]:
    root = folder / "small"
    write_small(root, args.small_files, args.small_size)
    source = FileSource(root)
    listed, wall, _ = best(lambda: list(source.scan()), args.repeat)
    entries = [e for e in listed if isinstance(e, Entry)]
    count = len(entries)
    rows = [("scan only", f"{count / wall:,.0f} files/s", "")]
    for workers in [int(w) for w in args.workers.split(",")]:
        run = functools.partial(_scan_and_hash, source, args.algorithm, workers)
        _, wall, cpu = best(run, args.repeat)
        rows.append(
            (
                f"scan + hash, {workers} worker(s), wall / CPU",
                f"{count / wall:,.0f} / {count / cpu:,.0f} files/s",
                ">= 50k files/s",
            )
        )
    return rows


def _scan_and_hash(source: FileSource, algorithm: str, workers: int) -> int:
    entries = [e for e in source.scan() if isinstance(e, Entry)]
    results = hash_entries(source, entries, algorithm, workers)
    failed = sum(1 for r in results if r.status != "ok")
    if failed:
        sys.exit(f"bench_hashing: {failed} small files did not hash cleanly")
    return len(entries)


def _rates(size: int, wall: float, cpu: float) -> str:
    return f"{size / wall / 1e6:,.0f} / {size / cpu / 1e6:,.0f} MB/s"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="notary-bench-", dir=args.dir) as tmp:
        rows = [
            ("CPUs", str(os.cpu_count()), ""),
            ("chunk size", f"{CHUNK_SIZE // 1024} KiB", ""),
        ]
        if args.big_mib > 0:
            rows.append((f"large file ({args.big_mib} MiB)", args.algorithm, ""))
            rows += bench_big(args, Path(tmp))
        if args.small_files > 0:
            count = f"{args.small_files:,} x {args.small_size} B"
            rows.append((f"small files ({count})", "", ""))
            rows += bench_small(args, Path(tmp))
    rows.append(("load average (1 min) at the end", f"{os.getloadavg()[0]:.2f}", ""))
    print(f"{'measure':44} {'value':>28}  target")
    for name, value, target in rows:
        print(f"{name:44} {value:>28}  {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
