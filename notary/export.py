"""Turn a stored run into a bundle: the bridge between the database and `notary.bundle`.

Only this module and the CLI read the database for a bundle; the bundle itself is
self-contained and `notary.verify` never touches the database.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from notary import __version__, merkle, record
from notary.attest import build_tree, run_leaf
from notary.bundle import BundleContent, BundleItem, BundleTimestamp, write_bundle
from notary.errors import NotFoundError, ProofError, UsageError
from notary.store import Store
from notary.store.models import COMPLETE, Item, Run, Timestamp

logger = logging.getLogger(__name__)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def _run_json(run: Run) -> dict[str, Any]:
    return {
        "id": run.id,
        "stream": run.stream,
        "period": run.period,
        "state": run.state,
        "partial": run.partial,
        "started": _iso(run.created_at),
        "sealed": _iso(run.sealed_at),
        "generator": f"notary {__version__}",
    }


def _select(items: list[Item], wanted: Sequence[str]) -> list[Item]:
    """Return the items named in ``wanted`` (display path or exact), in path order."""
    if not wanted:
        return items
    by_name = {record.display_name(bytes(item.path)): item for item in items}
    # A name given with raw bytes (not valid UTF-8) arrives surrogate-escaped.
    by_name |= {os.fsdecode(bytes(item.path)): item for item in items}
    missing = [name for name in wanted if name not in by_name]
    if missing:
        raise NotFoundError(
            f"export: no such item(s) in the run: {', '.join(missing)}",
            items=missing,
            hint="`notary show RUN --items` lists the item paths",
        )
    chosen = {id(by_name[name]) for name in wanted}
    return [item for item in items if id(item) in chosen]


def _bundle_item(tree: merkle.HashTree, item: Item) -> BundleItem:
    content = bytes(item.content_digest or b"")
    meta = bytes(item.record_digest or b"")
    leaf = merkle.leaf_hash(tree.algorithm, content, meta)
    return BundleItem(
        n=item.seq,
        path=record.display_name(bytes(item.path)),
        record=(item.record or "").encode("ascii"),
        content_digest=content,
        record_digest=meta,
        status=item.status,
        siblings=tree.proof(leaf),
    )


def _certificates(pem: str) -> list[bytes]:
    if not pem.strip():
        return []
    certs = x509.load_pem_x509_certificates(pem.encode("ascii"))
    return [cert.public_bytes(Encoding.DER) for cert in certs]


def _bundle_timestamp(token: Timestamp) -> BundleTimestamp:
    return BundleTimestamp(
        tsa=token.tsa,
        response=bytes(token.response),
        certificates=_certificates(token.certificates),
        serial=token.serial,
        gen_time=_iso(token.gen_time) or "",
        gen_time_raw=token.gen_time_raw,
        policy=token.policy,
        hash_algorithm=token.hash_algorithm,
    )


def _anchors(store: Store, run_id: int) -> list[dict[str, Any]]:
    try:
        from notary.anchor.verify import anchor_record, is_exportable
    except ImportError:
        return []
    return [
        anchor_record(anchor)
        for anchor in store.anchors(run_id)
        # Only anchors whose transaction exists: a record without one proves nothing.
        if is_exportable(anchor)
    ]


def bundle_content(
    store: Store, run_id: int, items: Sequence[str] = ()
) -> BundleContent:
    """Gather a complete run (or some of its items) into a BundleContent.

    Raises UsageError for a run that is not complete, ProofError when the stored items
    no longer give the stored root (a damaged database).
    """
    run = store.get_run(run_id)
    if run.state != COMPLETE or run.root is None:
        raise UsageError(
            f"run {run_id}: is {run.state}, only complete runs can be exported",
            run=run_id,
            hint=f"finish it with `notary attest --resume {run_id}`",
        )
    tree = build_tree(store, run)
    if tree.root != run.root:
        raise ProofError(
            f"run {run_id}: stored items give root {tree.root.hex()}, "
            f"expected {run.root.hex()}",
            run=run_id,
        )
    stored = list(store.iter_items(run_id))
    hashed = [item for item in stored if item.status != "error"]
    errors = [
        {"path": record.display_name(bytes(i.path)), "error": i.error or "unreadable"}
        for i in stored
        if i.status == "error"
    ]
    previous = None
    if run.previous_root is not None:
        previous_run = (
            store.get_run(run.previous_run_id) if run.previous_run_id else None
        )
        chain = merkle.chain_leaf(run.algorithm, run.previous_root)
        previous = {
            "run": run.previous_run_id,
            "period": previous_run.period if previous_run else None,
            "root": run.previous_root,
            "siblings": tree.proof(chain),
        }
    if run.run_record is None:
        raise ProofError(f"run {run_id}: has no run record", run=run_id)
    described = run.run_record.encode("ascii")
    return BundleContent(
        run_record=described,
        run_siblings=tree.proof(run_leaf(run.algorithm, described)),
        run=_run_json(run),
        algorithm=run.algorithm,
        root=run.root,
        leaves=tree.size,
        items=[_bundle_item(tree, item) for item in _select(hashed, items)],
        timestamps=[_bundle_timestamp(token) for token in store.timestamps(run_id)],
        previous=previous,
        errors=errors,
        skipped=json.loads(run.skipped or "[]"),
        anchors=_anchors(store, run_id),
    )


def export(store: Store, run_id: int, output: Path, items: Sequence[str] = ()) -> Path:
    """Write the bundle of a run to ``output`` (zip); return the path written."""
    content = bundle_content(store, run_id, items)
    write_bundle(content, output)
    logger.info(
        "run %s: bundle written to %s (%d items)", run_id, output, len(content.items)
    )
    return output
