#!/usr/bin/env python3
"""Benchmark the hash tree: build from two digests per item, proof extraction, checking.

Prints a small table: build rate (items/s, wall and CPU), microseconds per proof
extracted and per proof checked, and memory (peak RSS of the process; the tree's own
size and the build's peak allocation from tracemalloc). Not part of the test suite.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import sys
import time
import tracemalloc
from collections.abc import Callable
from typing import TypeVar

from notary import merkle

T = TypeVar("T")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1_000_000, help="tree size")
    parser.add_argument("--proofs", type=int, default=10_000, help="proofs to time")
    parser.add_argument("--algorithm", default="sha256", choices=merkle.ALGORITHMS)
    parser.add_argument("--repeat", type=int, default=3, help="builds; best is kept")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--no-tracemalloc", action="store_true", help="skip the traced extra build"
    )
    return parser.parse_args(argv)


def timed(func: Callable[[], T]) -> tuple[T, float, float]:
    """Run ``func``; return its result, wall seconds and CPU seconds."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = func()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def make_items(count: int, width: int, seed: int) -> list[tuple[bytes, bytes]]:
    rng = random.Random(seed)
    return [(rng.randbytes(width), rng.randbytes(width)) for _ in range(count)]


def build(algorithm: str, items: list[tuple[bytes, bytes]]) -> merkle.HashTree:
    return merkle.HashTree(algorithm, merkle.leaf_hashes(algorithm, items))


def best_build(
    algorithm: str, items: list[tuple[bytes, bytes]], repeat: int
) -> tuple[merkle.HashTree, float, float]:
    """Build ``repeat`` times; return the last tree and the best wall and CPU times."""
    walls, cpus = [], []
    for _ in range(repeat):
        tree = None  # let the previous tree go before building the next one
        tree, wall, cpu = timed(lambda: build(algorithm, items))
        walls.append(wall)
        cpus.append(cpu)
    assert tree is not None
    return tree, min(walls), min(cpus)


def time_proofs(
    tree: merkle.HashTree, items: list[tuple[bytes, bytes]], count: int, seed: int
) -> tuple[tuple[float, float], tuple[float, float]]:
    """Return (wall, CPU) microseconds per proof extracted, then per proof checked."""
    algorithm = tree.algorithm
    sample = random.Random(seed).sample(items, min(count, len(items)))
    leaves = [merkle.leaf_hash(algorithm, c, r) for c, r in sample]
    proofs, *extract = timed(lambda: [tree.proof(leaf) for leaf in leaves])
    checks, *check = timed(
        lambda: [
            merkle.check_proof(algorithm, [c, r], siblings, tree.root)
            for (c, r), siblings in zip(sample, proofs, strict=True)
        ]
    )
    if not all(checks):
        sys.exit("bench_tree: a proof did not check; the tree is broken")
    per = 1e6 / len(leaves)
    return (extract[0] * per, extract[1] * per), (check[0] * per, check[1] * per)


def traced_build(algorithm: str, items: list[tuple[bytes, bytes]]) -> tuple[int, int]:
    """Return (bytes the built tree keeps, peak bytes allocated while building)."""
    tracemalloc.start()
    tree = build(algorithm, items)
    kept, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del tree
    return kept, peak


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    width = merkle.digest_size(args.algorithm)
    items = make_items(args.items, width, args.seed)
    rss_inputs = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    tree, wall, cpu = best_build(args.algorithm, items, args.repeat)
    extract_us, check_us = time_proofs(tree, items, args.proofs, args.seed)
    rss_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    load = os.getloadavg()[0]
    rows = [
        ("load average (1 min) at the end", f"{load:.2f}", f"{os.cpu_count()} CPUs"),
        ("items", f"{args.items:,}", ""),
        ("algorithm", args.algorithm, ""),
        ("build (leaf hashes + tree), wall", f"{wall:.3f} s", ""),
        ("build rate, wall", f"{args.items / wall:,.0f} items/s", ">= 1M items/s"),
        ("build rate, CPU", f"{args.items / cpu:,.0f} items/s", ""),
        ("proof extraction, wall / CPU", _pair(extract_us, "us"), "<= 50 us"),
        ("proof check, wall / CPU", _pair(check_us, "us"), "<= 50 us"),
        ("proof length", f"{len(tree.proof(tree.leaf(0)))} siblings", ""),
        ("peak RSS, inputs only", f"{rss_inputs / 1024:,.0f} MiB", ""),
        ("peak RSS, whole run", f"{rss_peak / 1024:,.0f} MiB", ""),
    ]
    if not args.no_tracemalloc:
        del tree
        kept, peak = traced_build(args.algorithm, items)
        rows.append(("tree size (tracemalloc)", f"{kept / 2**20:,.0f} MiB", ""))
        rows.append(("build peak (tracemalloc)", f"{peak / 2**20:,.0f} MiB", ""))
    print_table(rows)
    return 0


def _pair(values: tuple[float, float], unit: str) -> str:
    return f"{values[0]:.1f} / {values[1]:.1f} {unit}"


def print_table(rows: list[tuple[str, str, str]]) -> None:
    print(f"{'measure':34} {'value':>22}  target")
    for name, value, target in rows:
        print(f"{name:34} {value:>22}  {target}")


if __name__ == "__main__":
    sys.exit(main())
