"""Build real bundles for tests without the database: files → records → tree → token.

The tree comes from `notary.merkle` and the token from the real built-in TSA, so what
these helpers write is what `notary export` writes; only the store is left out.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from asn1crypto import tsp

from notary import merkle, record
from notary.bundle import BundleContent, BundleItem, BundleTimestamp, write_bundle
from notary.tsa.server import BuiltinTSA
from notary.tsa.token import token_info


@dataclass
class Evidence:
    """One attested file: its name bytes, content bytes and canonical record."""

    name: bytes
    content: bytes
    record: bytes
    kind: str = "file"


def evidence_of(directory: Path) -> list[Evidence]:
    """Return the files and symlinks under ``directory``, sorted by name bytes."""
    base = os.fsencode(directory)
    found = []
    for parent, dirs, files in os.walk(base):
        dirs.sort()
        links = [d for d in dirs if os.path.islink(os.path.join(parent, d))]
        for entry in sorted([*files, *links]):
            full = os.path.join(parent, entry)
            name = os.path.relpath(full, base)
            found.append(_evidence(full, name))
    return sorted(found, key=lambda e: e.name)


def _evidence(full: bytes, name: bytes) -> Evidence:
    info = os.lstat(full)
    fields: dict[str, record.Value] = {"v": 1, "salt": record.new_salt()}
    fields.update(record.name_fields("path", name))
    if os.path.islink(full):
        target = os.readlink(full)
        fields.update(kind="symlink", size=len(target))
        fields.update(record.name_fields("target", target))
        return Evidence(name, target, record.encode(fields), "symlink")
    with open(full, "rb") as handle:
        content = handle.read()
    fields.update(kind="file", size=len(content), mtime_ns=info.st_mtime_ns)
    return Evidence(name, content, record.encode(fields))


def timestamp(tsa: BuiltinTSA, algorithm: str, root: bytes) -> bytes:
    """Return a TimeStampResp over ``root`` from the built-in TSA."""
    request = tsp.TimeStampReq(
        {
            "version": 1,
            "message_imprint": {
                "hash_algorithm": {"algorithm": algorithm},
                "hashed_message": root,
            },
            "nonce": secrets.randbits(63) + 1,
            "cert_req": True,
        }
    )
    return tsa.respond(request.dump())


def bundle_timestamp(tsa: BuiltinTSA, algorithm: str, root: bytes) -> BundleTimestamp:
    response = timestamp(tsa, algorithm, root)
    from notary.tsa.token import load_token

    info = token_info(load_token(response))
    return BundleTimestamp(
        tsa="builtin",
        response=response,
        certificates=[],
        serial=info.serial_hex,
        gen_time=info.gen_time.isoformat().replace("+00:00", "Z"),
        gen_time_raw=info.gen_time_raw,
        policy=info.policy,
        hash_algorithm=info.hash_algorithm,
    )


def run_record_of(
    algorithm: str,
    items: int,
    *,
    stream: str = "logs",
    period: str = "2026-11",
    previous: dict[str, object] | None = None,
    min_tokens: int = 1,
) -> bytes:
    """Return the canonical run record of a run (as the attest pipeline writes it)."""
    root = previous["root"] if previous is not None else None
    return record.encode(
        {
            "v": 1,
            "kind": "run",
            "stream": stream,
            "period": period,
            "algorithm": algorithm,
            "items": items,
            "previous_period": None if previous is None else str(previous["period"]),
            "previous_root": root.hex() if isinstance(root, bytes) else None,
            "min_tokens": min_tokens,
        }
    )


def _marked_unstable(e: Evidence) -> Evidence:
    fields = record.decode(e.record)
    fields["unstable"] = True
    return Evidence(e.name, e.content, record.encode(fields), e.kind)


def content_of(
    evidence: list[Evidence],
    tsa: BuiltinTSA,
    *,
    algorithm: str = "sha256",
    stream: str = "logs",
    period: str = "2026-11",
    run_id: int = 1,
    previous: dict[str, object] | None = None,
    min_tokens: int = 1,
    unstable: frozenset[bytes] = frozenset(),
) -> BundleContent:
    """Return the BundleContent of one run over ``evidence`` (chained to ``previous``).

    ``previous`` holds ``run``, ``period`` and ``root`` (bytes) of the previous run.
    Items named in ``unstable`` get ``"unstable": true`` in their record and that
    status. The tree holds the item leaves, the chain leaf and the run record's leaf.
    """
    evidence = [_marked_unstable(e) if e.name in unstable else e for e in evidence]
    pairs = [
        (merkle.digest(algorithm, e.content), merkle.digest(algorithm, e.record))
        for e in evidence
    ]
    leaves = merkle.leaf_hashes(algorithm, pairs)
    chain = None
    if previous is not None:
        chain = merkle.chain_leaf(algorithm, previous["root"])  # type: ignore[arg-type]
        leaves.append(chain)
    run_record = run_record_of(
        algorithm,
        len(evidence),
        stream=stream,
        period=period,
        previous=previous,
        min_tokens=min_tokens,
    )
    leaves.append(merkle.digest(algorithm, run_record))
    tree = merkle.HashTree(algorithm, leaves)
    items = [
        BundleItem(
            n=n,
            path=record.display_name(e.name),
            record=e.record,
            content_digest=c,
            record_digest=r,
            status="unstable" if e.name in unstable else "ok",
            siblings=tree.proof(merkle.leaf_hash(algorithm, c, r)),
        )
        for n, (e, (c, r)) in enumerate(zip(evidence, pairs, strict=True), start=1)
    ]
    chained = None
    if previous is not None and chain is not None:
        chained = {**previous, "siblings": tree.proof(chain)}
    return BundleContent(
        run={"id": run_id, "stream": stream, "period": period, "state": "complete"},
        algorithm=algorithm,
        root=tree.root,
        leaves=tree.size,
        items=items,
        timestamps=[bundle_timestamp(tsa, algorithm, tree.root)],
        run_record=run_record,
        run_siblings=tree.proof(merkle.digest(algorithm, run_record)),
        previous=chained,
    )


def make_bundle(
    directory: Path, tsa: BuiltinTSA, output: Path, **options: object
) -> BundleContent:
    """Attest the files under ``directory`` and write their bundle to ``output``."""
    content = content_of(evidence_of(directory), tsa, **options)  # type: ignore[arg-type]
    write_bundle(content, output)
    return content


def write_files(directory: Path, files: dict[str, bytes]) -> Path:
    """Create ``files`` (relative name → bytes) under ``directory``; return it."""
    for name, data in files.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return directory
