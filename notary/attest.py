"""The attestation run: collect → hash → tree → timestamp → (anchor) → seal.

Each step persists its result before the next starts, so a killed process, a TSA outage
or a chain outage never loses work: ``resume`` picks a run up where it stopped, hashing
only the items not yet recorded. A run becomes ``complete`` only when it holds at least
``min_tokens`` verified timestamp tokens.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from notary import merkle, record
from notary import period as periods
from notary.config import Settings, TSAConfig
from notary.errors import (
    ConfigError,
    NoItemsError,
    NotaryError,
    RunConflictError,
    TimestampError,
    UsageError,
)
from notary.hashing import Progress, hash_entries
from notary.sources import Entry, Hashed, Skipped, Source, make_record, open_sources
from notary.store import Store
from notary.store.models import (
    AWAITING_TIMESTAMP,
    COLLECTING,
    COMPLETE,
    HASHING,
    Run,
    Timestamp,
    utcnow,
)

logger = logging.getLogger(__name__)

# Set by a service that is shutting down: hashing stops at the next item, keeping what
# it hashed, and the run resumes on the next start.
STOP = threading.Event()

FLUSH_ITEMS = 500
FLUSH_SECONDS = 2.0
DEFAULT_LEASE = timedelta(minutes=10)
RETRY_BASE = timedelta(minutes=5)
RETRY_MAX = timedelta(hours=6)


class Stopped(KeyboardInterrupt):
    """Hashing stopped because `STOP` was set; what was hashed is saved."""


@dataclass
class RunSummary:
    """What a run holds after a pipeline pass; ``to_json`` is the CLI's ``--json``."""

    run: Run
    hashed_now: int = 0
    errors: list[dict[str, str]] = field(default_factory=list)
    unstable: list[str] = field(default_factory=list)
    tokens: list[Timestamp] = field(default_factory=list)
    timestamp_errors: list[dict[str, str]] = field(default_factory=list)
    anchor: dict[str, Any] | None = None

    @property
    def skipped(self) -> list[dict[str, str]]:
        return list(json.loads(self.run.skipped or "[]"))

    def to_json(self) -> dict[str, Any]:
        return describe_run(self.run) | {
            "hashed_now": self.hashed_now,
            "errors": self.errors,
            "unstable": self.unstable,
            "skipped": self.skipped,
            "timestamps": [
                {"tsa": t.tsa, "serial": t.serial, "gen_time": t.gen_time.isoformat()}
                for t in self.tokens
            ],
            "timestamp_errors": self.timestamp_errors,
            "anchor": self.anchor,
        }


def describe_run(run: Run) -> dict[str, Any]:
    """Return a run as plain data (the ``--json`` form of ``notary runs``)."""
    return {
        "run": run.id,
        "stream": run.stream,
        "period": run.period,
        "state": run.state,
        "root": run.root.hex() if run.root else None,
        "algorithm": run.algorithm,
        "items": run.item_count,
        "errors": run.error_count,
        "partial": run.partial,
        "previous_run": run.previous_run_id,
        "created": run.created_at.isoformat(),
        "sealed": run.sealed_at.isoformat() if run.sealed_at else None,
    }


def owner_id() -> str:
    """Return an identifier of this process for run claims (host and pid)."""
    return f"{socket.gethostname()}:{os.getpid()}"


class Lease:
    """Keep this process's claim on a run alive from a background thread.

    The claim is renewed every third of its duration; if a renewal finds the run taken
    by another owner (our lease expired, e.g. the machine was suspended), `check`
    raises RunConflictError so no more work is written. Leaving the context releases
    the claim.
    """

    def __init__(
        self, store: Store, run_id: int, owner: str, duration: timedelta = DEFAULT_LEASE
    ) -> None:
        self.store, self.run_id, self.owner, self.duration = (
            store,
            run_id,
            owner,
            duration,
        )
        self.lost = False
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._renew, name=f"lease-run-{run_id}", daemon=True
        )

    def __enter__(self) -> Lease:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()
        if not self.lost:
            self.store.release(self.run_id, self.owner)

    def _renew(self) -> None:
        interval = self.duration.total_seconds() / 3
        while not self._stop.wait(interval):
            try:
                held = self.store.claim(self.run_id, self.owner, self.duration)
            except NotaryError as exc:
                logger.warning("run %s: lease renewal failed: %s", self.run_id, exc)
                continue
            if not held:
                logger.error("run %s: lease lost to another process", self.run_id)
                self.lost = True
                return

    def check(self) -> None:
        """Raise RunConflictError if another process has taken the run over."""
        if self.lost:
            raise RunConflictError(
                f"run {self.run_id}: lease lost to another process; stopped",
                run=self.run_id,
            )


# collect ------------------------------------------------------------------------------


def collect(
    sources: Sequence[Source],
) -> tuple[list[tuple[Source, Entry]], list[Skipped]]:
    """List every source; return (source, entry) pairs in path order and skipped files.

    Raises UsageError when two sources name the same item path.
    """
    entries: dict[bytes, tuple[Source, Entry]] = {}
    skipped: list[Skipped] = []
    for source in sources:
        for found in source.scan():
            if isinstance(found, Skipped):
                skipped.append(found)
                continue
            if found.path in entries:
                raise UsageError(
                    f"item {record.display_name(found.path)}: named by two sources",
                    hint="attest them as separate streams, or give distinct folders",
                )
            entries[found.path] = (source, found)
    return [entries[path] for path in sorted(entries)], skipped


def _skipped_json(skipped: Iterable[Skipped]) -> str:
    return json.dumps(
        [{"path": record.display_name(s.path), "reason": s.reason} for s in skipped]
    )


# hash ---------------------------------------------------------------------------------


def _item_row(hashed: Hashed, seq: int, algorithm: str) -> dict[str, Any]:
    row: dict[str, Any] = {
        "seq": seq,
        "path": hashed.entry.path,
        "kind": hashed.entry.kind,
        "status": hashed.status,
        "size": hashed.size,
        "error": hashed.error,
    }
    if hashed.status == "error" or hashed.content_digest is None:
        return row | {"status": "error", "record": None}
    fields = make_record(hashed, record.new_salt())
    if hashed.status == "unstable":
        # In the record, so that the status is covered by the proof.
        fields["unstable"] = True
    encoded = record.encode(fields)
    return row | {
        "record": encoded.decode("ascii"),
        "content_digest": hashed.content_digest,
        "record_digest": merkle.digest(algorithm, encoded),
    }


def _hash_missing(
    store: Store,
    run: Run,
    entries: Sequence[tuple[Source, Entry]],
    settings: Settings,
    progress: Progress,
    lease: Lease,
) -> int:
    """Hash the entries ``run`` lacks, persisting them in batches; return how many."""
    done = store.item_paths(run.id or 0)
    seq_of = {entry.path: n for n, (_, entry) in enumerate(entries, start=1)}
    sources = {id(source): source for source, _ in entries}
    if len(sources) == 1:
        only = next(iter(sources.values()))
        source_of: Any = _Always(only)
    else:
        source_of = {entry.path: source for source, entry in entries}
    todo = [entry for _, entry in entries if entry.path not in done]
    if done:
        logger.info(
            "run %s: %d items already hashed, %d to go", run.id, len(done), len(todo)
        )
    progress.start(len(todo), sum(entry_size(e) for e in todo))

    pending: list[dict[str, Any]] = []
    last_flush = time.monotonic()
    count = 0
    try:
        for hashed in hash_entries(
            lambda entry: source_of[entry.path],
            todo,
            run.algorithm,
            settings.workers,
            progress,
        ):
            pending.append(_item_row(hashed, seq_of[hashed.entry.path], run.algorithm))
            count += 1
            if STOP.is_set():
                raise Stopped(f"run {run.id}: stopped after {count} item(s)")
            if (
                len(pending) >= FLUSH_ITEMS
                or time.monotonic() - last_flush > FLUSH_SECONDS
            ):
                lease.check()
                store.add_items(run.id or 0, pending)
                pending.clear()
                last_flush = time.monotonic()
    finally:
        # Also when interrupted: what was hashed is kept, so a resume skips it.
        if pending and not lease.lost:
            store.add_items(run.id or 0, pending)
            logger.info("run %s: %d hashed items saved", run.id, len(pending))
    lease.check()
    progress.finish()
    return count


class _Always:
    """A mapping that gives one source for every path (saves a dict per item)."""

    def __init__(self, source: Source) -> None:
        self.source = source

    def __getitem__(self, _path: bytes) -> Source:
        return self.source


def entry_size(entry: Entry) -> int:
    size = entry.fields.get("size")
    return size if isinstance(size, int) else 0


# tree ---------------------------------------------------------------------------------


def build_tree(store: Store, run: Run) -> merkle.HashTree:
    """Return the run's tree: a leaf per hashed item, the previous root if any, and the
    run record (see `run_record`) once the run has one."""
    leaves = merkle.leaf_hashes(run.algorithm, store.item_digests(run.id or 0))
    if run.previous_root is not None:
        leaves.append(merkle.chain_leaf(run.algorithm, run.previous_root))
    if run.run_record is not None:
        leaves.append(run_leaf(run.algorithm, run.run_record.encode("ascii")))
    return merkle.HashTree(run.algorithm, leaves)


def run_leaf(algorithm: str, run_record: bytes) -> bytes:
    """Return the leaf of a run record: ``H(run_record)`` (a data group of one)."""
    return merkle.digest(algorithm, run_record)


def run_record(
    run: Run, items: int, previous_period: str | None, min_tokens: int
) -> bytes:
    """Return the canonical run record, which binds the run's identity to its root.

    FROZEN FORMAT (with the bundle format): stream, period, algorithm, the number of
    item leaves, the previous run's period and root (hex) and the tokens needed to seal.
    """
    return record.encode(
        {
            "v": record.RECORD_VERSION,
            "kind": "run",
            "stream": run.stream,
            "period": run.period,
            "algorithm": run.algorithm,
            "items": items,
            "previous_period": previous_period,
            "previous_root": run.previous_root.hex() if run.previous_root else None,
            "min_tokens": min_tokens,
        }
    )


def _seal_tree(settings: Settings, store: Store, run: Run) -> Run:
    """Fix the run's previous link and run record, build its tree, store the root."""
    run_id = run.id or 0
    previous = store.previous_completed(run.stream, run.period)
    if previous is not None and previous.root is not None:
        run = store.update_run(
            run_id, previous_run_id=previous.id, previous_root=previous.root
        )
    errors = store.item_count(run_id, status="error")
    item_count = store.item_count(run_id)
    described = run_record(
        run,
        item_count - errors,
        previous.period if previous is not None else None,
        settings.min_tokens,
    )
    run = store.update_run(run_id, run_record=described.decode("ascii"))
    tree = build_tree(store, run)
    run = store.update_run(
        run_id,
        root=tree.root,
        leaves=tree.size,
        item_count=item_count,
        error_count=errors,
        partial=errors > 0,
        state=AWAITING_TIMESTAMP,
    )
    logger.info(
        "run %s: tree of %d leaves, root %s", run_id, tree.size, tree.root.hex()
    )
    return run


# timestamp ----------------------------------------------------------------------------


def timestamp_run(
    settings: Settings, store: Store, run: Run, tsas: Sequence[TSAConfig] | None = None
) -> tuple[Run, list[Timestamp], list[dict[str, str]]]:
    """Ask every TSA without a token for this run yet; seal the run if enough tokens.

    Returns the fresh run, its stored tokens and the per-TSA failures of this pass.
    """
    from notary.tsa.client import IssuedToken, collect_tokens

    run_id = run.id or 0
    tsas = list(
        tsas if tsas is not None else settings.tsas_for(settings.stream(run.stream))
    )
    have = {t.tsa for t in store.timestamps(run_id)}
    ask = [tsa for tsa in tsas if tsa.name not in have]
    failures: list[dict[str, str]] = []
    if run.root is None:
        raise UsageError(f"run {run_id}: has no root yet", run=run_id)
    for result in collect_tokens(ask, run.root, run.algorithm, home=settings.home):
        if isinstance(result, IssuedToken):
            store.add_timestamp(_timestamp_row(run_id, result))
            logger.info(
                "run %s: token from %s serial %x",
                run_id,
                result.tsa,
                result.info.serial,
            )
        else:
            failures.append(_failure(result))
    return _seal_if_ready(settings, store, run), store.timestamps(run_id), failures


def _failure(error: TimestampError) -> dict[str, str]:
    tsa = str(error.facts.get("tsa", "?"))
    logger.warning("timestamp from %s failed: %s", tsa, error.message)
    return {"tsa": tsa, "error": error.message, "type": type(error).__name__}


def _timestamp_row(run_id: int, issued: Any) -> Timestamp:
    from cryptography.hazmat.primitives.serialization import Encoding

    info = issued.info
    pem = "".join(
        c.public_bytes(Encoding.PEM).decode("ascii") for c in issued.certificates
    )
    return Timestamp(
        run_id=run_id,
        tsa=issued.tsa,
        url=issued.url,
        response=issued.response,
        serial=format(info.serial, "x"),
        gen_time=info.gen_time,
        gen_time_raw=info.gen_time_raw,
        policy=info.policy,
        hash_algorithm=info.hash_algorithm,
        certificates=pem,
    )


def _seal_if_ready(settings: Settings, store: Store, run: Run) -> Run:
    run_id = run.id or 0
    tokens = len(store.timestamps(run_id))
    if tokens >= settings.min_tokens:
        run = store.update_run(
            run_id, state=COMPLETE, sealed_at=utcnow(), last_error=None
        )
        logger.info("run %s: complete with %d token(s)", run_id, tokens)
        return run
    attempts = run.attempts + 1
    delay = min(RETRY_BASE * 2 ** (attempts - 1), RETRY_MAX)
    logger.warning(
        "run %s: %d of %d token(s); awaiting timestamp (retry %d in %s)",
        run_id,
        tokens,
        settings.min_tokens,
        attempts,
        delay,
    )
    return store.update_run(
        run_id,
        attempts=attempts,
        next_retry_at=utcnow() + delay,
        last_error=f"{tokens} of {settings.min_tokens} token(s)",
    )


# the pipeline -------------------------------------------------------------------------


def attest(
    settings: Settings,
    store: Store,
    *,
    stream: str,
    period: str,
    paths: Sequence[str],
    algorithm: str | None = None,
    progress: Progress | None = None,
    owner: str | None = None,
    anchor: bool = False,
    source_options: dict[str, Any] | None = None,
    allow_empty: bool = False,
) -> RunSummary:
    """Attest ``paths`` as ``stream`` for ``period``: a new run, hashed, timestamped.

    With ``allow_empty`` (scheduled runs) a period with no items still gets a run
    whose tree holds its run record and chain link. Otherwise raises NoItemsError (no
    run is created) when the sources hold nothing to attest,
    RunConflictError when the stream already has a run for the period, ConfigError when
    no TSA is configured.
    """
    periods.parse(period)
    stream_config = settings.stream(stream)
    if not settings.tsas_for(stream_config):
        raise ConfigError(
            "config: no [[tsa]] configured",
            hint="run `notary init` or add a [[tsa]] table",
        )
    algorithm = algorithm or (stream_config.hash_algorithm if stream_config else None)
    algorithm = algorithm or settings.hash_algorithm
    merkle.digest(algorithm, b"")
    _check_tsas(settings, settings.tsas_for(stream_config))
    existing = store.find_run(stream, period)
    if existing is not None:
        raise _conflict(existing)
    _check_order(store, stream, period)

    paths = [path if "://" in path else os.path.abspath(path) for path in paths]
    sources = open_sources(paths, **(source_options or {}))
    entries, skipped = collect(sources)
    if not entries and not allow_empty:
        raise NoItemsError(
            f"sources {', '.join(paths)}: nothing to attest"
            + (f" ({len(skipped)} special file(s) skipped)" if skipped else ""),
            paths=list(paths),
        )
    owner = owner or owner_id()
    spec = {"paths": list(paths), "options": source_options or {}}
    run = store.create_run(
        stream=stream,
        period=period,
        algorithm=algorithm,
        source=json.dumps(spec),
        owner=owner,
        lease=DEFAULT_LEASE,
    )
    run = store.update_run(run.id or 0, skipped=_skipped_json(skipped))
    return _finish(settings, store, run, entries, progress, owner, anchor)


def _check_tsas(settings: Settings, tsas: Sequence[TSAConfig]) -> None:
    """Refuse, before any work, a TSA setup that could never seal a run."""
    from notary.tsa.client import check_config

    check_config(tsas, settings.home)
    if settings.min_tokens > len(tsas):
        raise ConfigError(
            f"config: min_tokens is {settings.min_tokens} but only {len(tsas)} TSA(s) "
            "are configured",
            hint="lower min_tokens or add [[tsa]] entries",
        )


def _check_order(store: Store, stream: str, period: str) -> None:
    """Refuse a run that could not join its stream's chain of months.

    Each run's tree holds the root of the latest complete earlier run, so periods must
    be sealed oldest first: not after a later complete period, and not while an
    earlier one is unfinished.
    """
    for other in store.list_runs(stream):
        if other.period > period and other.state == COMPLETE:
            raise UsageError(
                f"stream {stream}: period {other.period} is already attested (run "
                f"{other.id}); a run for the earlier {period} could not join the chain",
                hint="attest periods oldest first (a late backfill: another stream)",
            )
        if other.period < period and other.state != COMPLETE:
            raise UsageError(
                f"stream {stream}: earlier period {other.period} is unfinished (run "
                f"{other.id}, {other.state})",
                hint=f"finish it first with `notary attest --resume {other.id}`",
            )


def _conflict(run: Run) -> RunConflictError:
    if run.state == COMPLETE:
        hint = "choose another --period or --stream"
    else:
        hint = f"finish it with `notary attest --resume {run.id}`"
    return RunConflictError(
        f"stream {run.stream} period {run.period}: run {run.id} exists ({run.state})",
        run=run.id,
        state=run.state,
        hint=hint,
    )


def resume(
    settings: Settings,
    store: Store,
    run_id: int,
    *,
    progress: Progress | None = None,
    owner: str | None = None,
    anchor: bool = False,
) -> RunSummary:
    """Finish an interrupted run without re-hashing the items it already holds."""
    owner = owner or owner_id()
    if store.get_run(run_id).state == COMPLETE:
        summary = summarize(store, store.get_run(run_id))
        live = [a for a in store.anchors(run_id) if a.state != "failed"]
        if anchor and not live:
            # A complete run whose anchoring failed earlier (e.g. no key then).
            summary.anchor = _anchor(settings, store, run_id)
        return summary
    if not store.claim(run_id, owner, DEFAULT_LEASE):
        held = store.get_run(run_id)
        raise RunConflictError(
            f"run {run_id}: claimed by {held.claim_owner} until {held.claim_expires}",
            run=run_id,
            hint="another process is working on it; wait or let its lease expire",
        )
    # Re-read under the claim: another process may have finished the run meanwhile.
    run = store.get_run(run_id)
    entries: list[tuple[Source, Entry]] = []
    try:
        if run.state == COMPLETE:
            return summarize(store, run)
        if run.state in (COLLECTING, HASHING):
            spec = json.loads(run.source)
            entries, skipped = collect(open_sources(spec["paths"], **spec["options"]))
            run = store.update_run(run_id, skipped=_skipped_json(skipped))
    except BaseException:
        store.release(run_id, owner)
        raise
    return _finish(settings, store, run, entries, progress, owner, anchor)


def _finish(
    settings: Settings,
    store: Store,
    run: Run,
    entries: Sequence[tuple[Source, Entry]],
    progress: Progress | None,
    owner: str,
    anchor: bool,
) -> RunSummary:
    run_id = run.id or 0
    progress = progress or Progress.disabled()
    hashed = 0
    with Lease(store, run_id, owner) as lease:
        if run.state in (COLLECTING, HASHING):
            run = store.update_run(run_id, state=HASHING)
            hashed = _hash_missing(store, run, entries, settings, progress, lease)
            lease.check()
            run = _seal_tree(settings, store, run)
        failures: list[dict[str, str]] = []
        if run.state == AWAITING_TIMESTAMP:
            run, _, failures = timestamp_run(settings, store, run)
    summary = summarize(store, run, hashed_now=hashed, timestamp_errors=failures)
    if anchor and run.state == COMPLETE:
        summary.anchor = _anchor(settings, store, run_id)
    return summary


def _anchor(settings: Settings, store: Store, run_id: int) -> dict[str, Any]:
    """Anchor a sealed run; a failure is reported, never fatal to the run."""
    try:
        from notary.anchor import anchor_run
    except ImportError:
        return {"state": "unavailable", "error": "anchoring support is not installed"}
    try:
        return dict(anchor_run(settings, store, run_id))
    except Exception as exc:
        logger.warning("run %s: anchoring failed: %s", run_id, exc)
        return {"state": "failed", "error": str(exc)}


def summarize(store: Store, run: Run, **extra: Any) -> RunSummary:
    """Return the summary of a stored run (errors and unstable items listed)."""
    run_id = run.id or 0
    errors: list[dict[str, str]] = []
    unstable: list[str] = []
    for item in store.problem_items(run_id):
        name = record.display_name(bytes(item.path))
        if item.status == "error":
            errors.append({"path": name, "error": item.error or "unreadable"})
        elif item.status == "unstable":
            unstable.append(name)
    return RunSummary(
        run=run,
        errors=errors,
        unstable=unstable,
        tokens=store.timestamps(run_id),
        **extra,
    )


def item_list(store: Store, run_id: int) -> list[dict[str, Any]]:
    """Return every item of a run as plain data (path, status, size, digests)."""
    return [
        {
            "n": item.seq,
            "path": record.display_name(bytes(item.path)),
            "status": item.status,
            "size": item.size,
            "content_digest": item.content_digest.hex()
            if item.content_digest
            else None,
            "error": item.error,
        }
        for item in store.iter_items(run_id)
    ]
