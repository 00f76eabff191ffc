"""Optional EVM anchors: a second, independent witness of a run's root beside the TSAs.

Public API (imported lazily: web3 loads only when anchoring is used):

- `anchor_run(settings, store, run_id) -> dict` — anchor a sealed run's root
- `upgrade_pending(settings, store) -> list[dict]` — one pass over open anchors and
  over `missing_anchors`
- `missing_anchors(settings, store) -> list[int]` — complete runs of anchored streams
  that have no anchor at all (their anchoring failed before a row was kept)
- `status(settings, store) -> list[dict]` — every anchor with its state
- `deploy(settings, rpc_url, chain_id=None) -> dict` — deploy the RootRegistry contract
- `verify_anchor(record, root, rpc_url) -> list[Check]` — check a bundle's anchor record
- `anchor_record(row) -> dict` — the bundle record of an anchor row
- `is_exportable(row) -> bool` — whether a bundle may carry the row's record

Modules: ``chain`` (connections, the builtin eth-tester chain), ``wallet`` (the
signing key), ``nonce``, ``tx`` (fees, signing, broadcast), ``anchorer`` (the state
machine), ``service`` (settings and store glue), ``receipt`` (the record), ``verify``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from notary.anchor.receipt import anchor_record
    from notary.anchor.service import (
        anchor_run,
        deploy,
        missing_anchors,
        status,
        upgrade_pending,
    )
    from notary.anchor.verify import is_exportable, verify_anchor

_EXPORTS = {
    "anchor_run": "notary.anchor.service",
    "upgrade_pending": "notary.anchor.service",
    "missing_anchors": "notary.anchor.service",
    "is_exportable": "notary.anchor.verify",
    "status": "notary.anchor.service",
    "deploy": "notary.anchor.service",
    "verify_anchor": "notary.anchor.verify",
    "anchor_record": "notary.anchor.receipt",
}

__all__ = [
    "anchor_record",
    "anchor_run",
    "deploy",
    "is_exportable",
    "missing_anchors",
    "status",
    "upgrade_pending",
    "verify_anchor",
]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
