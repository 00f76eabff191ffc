"""Periodic attestations: every configured stream attested once per period.

A stream's period is a calendar month (``YYYY-MM``). A fire of the stream's cron
schedule at local time T (in the stream's ``timezone``) attests the month before T; the
period, not the wall clock, identifies a run, so DST and time zones never change what
is attested.

A stream's ``source`` is a template filled per period: ``{period:<strftime format>}``
stands for the period's first day at 00:00, so ``s3://audit/AWSLogs/{period:%Y/%m}/``
is ``s3://audit/AWSLogs/2026/11/`` for 2026-11 and ``/srv/snap/{period:%Y-%m}/`` is
``/srv/snap/2026-11/``.

One pass (`run_due`) walks each stream from ``first_period`` (default: the last due
period) up to the last due period and, in ascending order:

- attests a period that has no run yet (a period older than the last due one is
  *late*: logged and reported to the webhook); a month without files or objects gets a
  run of its own (its tree holds the run record and the chain link), a missing source
  folder is a failure;
- resumes a run that was interrupted while collecting or hashing (its holder died);
- retries a run awaiting a timestamp once its ``next_retry_at`` has passed.

A period is *due* once the stream's first scheduled fire after its end has passed, in
the stream's time zone: with ``0 2 1 * *`` November is due at 02:00 on 1 December, not
at midnight, which leaves time for late deliveries. The last due period is thus the
period of the latest fire not after now.

A stream's walk stops at the first period whose run is not complete after the pass, so
every run's tree links to its immediate predecessor (the run chain has no holes). Only
streams configured in this home are worked on: a run of another home sharing the
database needs that home's sources and TSAs.

Exactly one run per (stream, period), even with several processes or hosts on one
database: a new run is the insert of a row that is UNIQUE(stream, period); an existing
run is taken with a lease (``claim_owner``, ``claim_expires``) by a compare-and-set
UPDATE that succeeds only when the lease is free, ours or expired. The holder renews
the lease while it works; the claim of a holder that died expires and is taken over
(at once when the holder was a process of this host that no longer exists).

The daemon (`run_daemon`) runs a pass at start and at each fire of a stream's schedule,
and a retry pass every `RETRY_POLL`. The retry pass also tries again periods whose
first attempt failed before a run existed (source missing, object store or database
down at fire time), with exponential backoff (`Setbacks`), so an outage at fire time
does not cost a month.
"""

from __future__ import annotations

import importlib
import logging
import os
import signal
import socket
import threading
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from types import FrameType
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import update

from notary import attest as pipeline
from notary import period as periods
from notary.config import Settings, StreamConfig
from notary.errors import ConfigError, NotaryError, RunConflictError
from notary.store import Store
from notary.store.models import (
    AWAITING_TIMESTAMP,
    COLLECTING,
    COMPLETE,
    HASHING,
    Run,
    utcnow,
)

logger = logging.getLogger(__name__)

RETRY_POLL = timedelta(minutes=5)
WEBHOOK_TIMEOUT = 10.0
STOP_POLL = 1.0  # seconds between the daemon's checks for a stop signal
PENDING_ANCHOR_STATES = ("submitted", "pending")
# Eight years: a schedule on 29 February fires at least once in any such span.
FIRE_SEARCH_MONTHS = 8 * 12 + 1
CRON_CHECK_START = datetime(2000, 1, 1, tzinfo=UTC)


# periods and fire times ---------------------------------------------------------------


def zone(stream: StreamConfig) -> ZoneInfo:
    """Return the stream's time zone; raises ConfigError for an unknown name."""
    try:
        return ZoneInfo(stream.timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(
            f"stream {stream.name}: unknown timezone {stream.timezone!r}",
            stream=stream.name,
            hint="an IANA name such as UTC or Europe/Berlin",
        ) from exc


def period_for(fire_time: datetime, tz: ZoneInfo | None = None) -> str:
    """Return the period a fire at ``fire_time`` attests: the month before, in tz."""
    local = fire_time.astimezone(tz) if tz is not None else fire_time
    return periods.last_finished(local)


def last_due_period(stream: StreamConfig, now: datetime) -> str | None:
    """Return the period of the stream's latest fire at or before ``now``, or None.

    A period is due only once the first fire after its end has passed (a schedule of
    02:00 on the 1st leaves an hour for late deliveries), so this is the latest period
    that may be attested at ``now``. Months are searched backwards, in the stream's
    time zone, for one holding a fire not later than ``now``.
    """
    tz = zone(stream)
    trigger = trigger_for(stream)
    month = periods.of(now.astimezone(tz))
    for _ in range(FIRE_SEARCH_MONTHS):
        start = datetime.combine(periods.parse(month), datetime.min.time(), tz)
        fire = trigger.get_next_fire_time(None, start.astimezone(UTC))
        if (
            fire is not None
            and fire <= now
            and periods.of(fire.astimezone(tz)) == month
        ):
            return periods.previous(month)
        month = periods.previous(month)
    return None


def first_period(stream: StreamConfig, now: datetime) -> str | None:
    """Return the stream's first period: ``first_period``, else the last due one."""
    if stream.first_period:
        return _checked_period(stream, stream.first_period)
    return last_due_period(stream, now)


def _checked_period(stream: StreamConfig, period: str) -> str:
    try:
        periods.parse(period)
    except NotaryError as exc:
        raise ConfigError(
            f"stream {stream.name}: bad first_period {period!r}",
            stream=stream.name,
            hint="a month as YYYY-MM, e.g. 2026-11",
        ) from exc
    return period


def due_periods(
    stream: StreamConfig, now: datetime, completed: Iterable[str]
) -> list[str]:
    """Return the periods from the first one up to the last due one at ``now`` (see
    `last_due_period`) that have no completed run, oldest first."""
    done = set(completed)
    first, last = first_period(stream, now), last_due_period(stream, now)
    if first is None or last is None:
        return []
    return [p for p in periods.between(first, last) if p not in done]


def is_late(period: str, stream: StreamConfig, now: datetime) -> bool:
    """Return whether ``period`` is older than the last due period at ``now``."""
    last = last_due_period(stream, now)
    return last is not None and period < last


def check_streams(streams: Iterable[StreamConfig]) -> None:
    """Refuse, before any work, a stream whose schedule, time zone, first period or
    source template is unusable; raises ConfigError naming the stream."""
    for stream in streams:
        trigger_for(stream)
        if stream.first_period:
            _checked_period(stream, stream.first_period)
        try:
            periods.fill(stream.source, "2000-01")
        except ConfigError as exc:
            raise ConfigError(
                f"stream {stream.name}: {exc.message}",
                stream=stream.name,
                hint=exc.hint,
            ) from exc


class WallClockCronTrigger(BaseTrigger):  # type: ignore[misc]
    """A cron trigger that steps through local wall-clock time, then localises.

    NOTE: APScheduler 3.11's CronTrigger adds wall-clock differences in UTC, which
    skips a daily midnight fire the day after a spring-forward change (America/
    Los_Angeles 2022-03-14) and fires a 01:30 job twice on a fall-back day. Here the
    cron fields are matched on naive local time (a CronTrigger in UTC over "wall
    time"), so each local day or month fires exactly once: a time inside a
    spring-forward gap fires just after the gap, an ambiguous fall-back time at its
    first occurrence only.
    """

    def __init__(self, expression: str, timezone: ZoneInfo) -> None:
        self.expression = expression
        self.timezone = timezone
        self._wall = CronTrigger.from_crontab(expression, timezone=UTC)

    def get_next_fire_time(
        self, previous_fire_time: datetime | None, now: datetime
    ) -> datetime | None:
        if previous_fire_time is not None:
            # Strictly after the previous fire in wall time: a repeated fall-back hour
            # must not match the same wall time again.
            previous = self._to_wall(previous_fire_time)
            wall = self._wall.get_next_fire_time(previous, previous)
        else:
            wall = self._wall.get_next_fire_time(None, self._to_wall(now))
        while wall is not None:
            fire = self._from_wall(wall)
            if previous_fire_time is not None or fire >= now:
                return fire
            # A first occurrence already past (now inside a repeated hour): skip it.
            wall = self._wall.get_next_fire_time(wall, wall)
        return None

    def _to_wall(self, moment: datetime) -> datetime:
        return moment.astimezone(self.timezone).replace(tzinfo=UTC, fold=0)

    def _from_wall(self, wall: datetime) -> datetime:
        local = wall.replace(tzinfo=self.timezone, fold=0)
        # Round-trip through UTC: a time inside a DST gap becomes the instant after it.
        return local.astimezone(UTC).astimezone(self.timezone)

    def __str__(self) -> str:
        return f"cron[{self.expression} {self.timezone.key}]"


def trigger_for(stream: StreamConfig) -> WallClockCronTrigger:
    """Return the stream's trigger; raises ConfigError for a bad cron expression or
    one that never fires (such as 31 February)."""
    hint = "five cron fields: minute hour day month weekday, e.g. '0 2 1 * *'"
    try:
        trigger = WallClockCronTrigger(stream.schedule, zone(stream))
    except ValueError as exc:
        raise ConfigError(
            f"stream {stream.name}: bad schedule {stream.schedule!r}: {exc}",
            stream=stream.name,
            hint=hint,
        ) from exc
    if trigger.get_next_fire_time(None, CRON_CHECK_START) is None:
        raise ConfigError(
            f"stream {stream.name}: schedule {stream.schedule!r} never fires",
            stream=stream.name,
            hint=hint,
        )
    return trigger


def next_fire(stream: StreamConfig, now: datetime) -> datetime | None:
    """Return the stream's first fire time strictly after ``now``."""
    return trigger_for(stream).get_next_fire_time(None, now + timedelta(microseconds=1))


def fire_times(stream: StreamConfig, start: datetime, count: int) -> list[datetime]:
    """Return the stream's next ``count`` fire times after ``start`` (as the daemon
    would see them, each computed from the previous one)."""
    trigger = trigger_for(stream)
    times: list[datetime] = []
    previous: datetime | None = None
    now = start
    while len(times) < count:
        fire = trigger.get_next_fire_time(previous, now)
        if fire is None:
            break
        times.append(fire)
        previous, now = fire, fire + timedelta(seconds=1)
    return times


# claims -------------------------------------------------------------------------------


def owner_id() -> str:
    """Return this process's claim owner: ``host:pid``."""
    return pipeline.owner_id()


def is_pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_dead_local_owner(owner: str | None) -> bool:
    """Return whether ``owner`` names a process of this host that no longer exists.

    NOTE: owners are ``host:pid``; two containers sharing one host name but not one PID
    namespace would wrongly see each other as dead, so give each its own host name.
    """
    if not owner:
        return False
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    return int(pid) != os.getpid() and not is_pid_alive(int(pid))


def expire_dead_claim(store: Store, run: Run, now: datetime | None = None) -> bool:
    """End the lease of a run whose holder died on this host, so it can be taken over.

    A compare-and-set on (claim_owner, claim_expires): if the holder renewed or another
    process already took the run over, nothing changes. Returns True when expired.
    """
    if run.claim_expires is None or not is_dead_local_owner(run.claim_owner):
        return False
    moment = now or utcnow()
    if run.claim_expires <= moment:
        return False
    with store.session() as session:
        result = session.execute(
            update(Run)
            .where(
                Run.id == run.id,  # type: ignore[arg-type]
                Run.claim_owner == run.claim_owner,  # type: ignore[arg-type]
                Run.claim_expires == run.claim_expires,  # type: ignore[arg-type]
            )
            .values(claim_expires=moment - timedelta(microseconds=1))
        )
    expired = bool(result.rowcount)  # type: ignore[attr-defined]
    if expired:
        logger.warning(
            "run %s: holder %s is gone; its claim is released", run.id, run.claim_owner
        )
    return expired


# one pass -----------------------------------------------------------------------------


@dataclass
class DueResult:
    """What a pass did for one (stream, period).

    ``action``: ``attested`` (new run), ``resumed`` (interrupted run finished),
    ``retried`` (timestamp retried), ``waiting`` (retry not due yet), ``busy`` (another
    process holds it), ``failed``.
    """

    stream: str
    period: str
    action: str
    run: int | None = None
    state: str | None = None
    root: str | None = None
    items: int | None = None
    partial: bool = False
    late: bool = False
    error: str | None = None
    next_retry_at: str | None = None
    hashed_now: int = 0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Setback:
    """The last failed attempt at a period that has no run yet."""

    period: str
    error: str
    attempts: int
    next_retry_at: datetime


class Setbacks:
    """Failed first attempts per (stream, period), kept in memory; thread-safe.

    A period whose source is missing or whose database or object store was down has
    no run row to hold its attempts, so the daemon keeps them here: a retry pass tries
    such a period again after the same exponential backoff as a run's timestamp
    (`notary.attest.RETRY_BASE` doubling up to `notary.attest.RETRY_MAX`).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._failed: dict[tuple[str, str], Setback] = {}

    def record(self, stream: str, period: str, error: str, now: datetime) -> Setback:
        with self._lock:
            before = self._failed.get((stream, period))
            attempts = before.attempts + 1 if before else 1
            delay = min(pipeline.RETRY_BASE * 2 ** (attempts - 1), pipeline.RETRY_MAX)
            setback = Setback(period, error, attempts, now + delay)
            self._failed[(stream, period)] = setback
            return setback

    def clear(self, stream: str, period: str) -> None:
        with self._lock:
            self._failed.pop((stream, period), None)

    def get(self, stream: str, period: str) -> Setback | None:
        with self._lock:
            return self._failed.get((stream, period))


@dataclass
class _Pass:
    settings: Settings
    store: Store
    now: datetime
    owner: str
    new_runs: bool
    setbacks: Setbacks
    results: list[DueResult] = field(default_factory=list)


def run_due(
    settings: Settings,
    store: Store,
    now: datetime | None = None,
    owner: str | None = None,
    *,
    streams: Sequence[str] | None = None,
    new_runs: bool = True,
    setbacks: Setbacks | None = None,
) -> list[DueResult]:
    """Run one scheduler pass (module docstring); return what it did, in order.

    Works only on runs of the streams configured in ``settings`` (another home sharing
    the database has its own TSAs and sources). ``streams`` limits the pass to those
    stream names; ``new_runs=False`` only finishes and retries existing runs;
    ``setbacks`` holds the failed attempts of periods without a run across passes, so
    they are retried with backoff (without it, every pass tries them). One stream's
    failure never stops the others: it becomes a ``failed`` result (and a webhook
    event). Raises ConfigError, before any work, for an unusable stream (see
    `check_streams`); stops between periods once `notary.attest.STOP` is set.
    """
    check_streams(settings.streams)
    work = _Pass(
        settings,
        store,
        now or utcnow(),
        owner or owner_id(),
        new_runs,
        setbacks or Setbacks(),
    )
    for stream in settings.streams:
        if pipeline.STOP.is_set():
            break
        if streams is None or stream.name in streams:
            _run_stream(work, stream)
    if streams is None and not pipeline.STOP.is_set():
        upgrade_anchors(settings, store)
    return work.results


def _run_stream(work: _Pass, stream: StreamConfig) -> None:
    runs = {run.period: run for run in work.store.list_runs(stream.name)}
    completed = [p for p, run in runs.items() if run.state == COMPLETE]
    for period in due_periods(stream, work.now, completed):
        if pipeline.STOP.is_set():
            return
        result = _run_period(work, stream, period, runs.get(period))
        if result is None:
            return
        work.results.append(result)
        _notify(work.settings, result)
        if result.state != COMPLETE:
            # Later periods wait, so each run chains to its immediate predecessor.
            return


def _run_period(
    work: _Pass, stream: StreamConfig, period: str, run: Run | None
) -> DueResult | None:
    late = is_late(period, stream, work.now)
    try:
        if run is None:
            if not work.new_runs:
                return None
            return _attest_new(work, stream, period, late)
        return _continue(work, stream, run, late)
    except RunConflictError as exc:
        logger.info(
            "stream %s period %s: busy elsewhere (%s)", stream.name, period, exc
        )
        return DueResult(
            stream.name, period, "busy", run=exc.facts.get("run"), late=late
        )
    except NotaryError as exc:
        return _failed(work, stream.name, period, run, late, exc)
    except Exception as exc:  # a bug met by one stream must not stop the others
        logger.exception("stream %s period %s: unexpected error", stream.name, period)
        wrapped = NotaryError(f"unexpected error: {type(exc).__name__}: {exc}")
        return _failed(work, stream.name, period, run, late, wrapped)


def _attest_new(
    work: _Pass, stream: StreamConfig, period: str, late: bool
) -> DueResult:
    setback = work.setbacks.get(stream.name, period)
    if setback is not None and setback.next_retry_at > work.now:
        return DueResult(
            stream.name,
            period,
            "waiting",
            late=late,
            error=setback.error,
            next_retry_at=setback.next_retry_at.isoformat(),
        )
    if late:
        logger.warning("stream %s period %s: late, catching up", stream.name, period)
    logger.info("stream %s period %s: attesting", stream.name, period)
    # An empty month (no files, no objects) is a normal outcome of a schedule: its run
    # holds only the run record and the chain link. A missing folder still fails.
    summary = pipeline.attest(
        work.settings,
        work.store,
        stream=stream.name,
        period=period,
        paths=[source_for(stream, period)],
        owner=work.owner,
        anchor=stream.anchor,
        source_options=source_options(stream),
        allow_empty=True,
    )
    work.setbacks.clear(stream.name, period)
    return _result(stream.name, "attested", summary.run, late, summary.hashed_now)


def _continue(work: _Pass, stream: StreamConfig, run: Run, late: bool) -> DueResult:
    run_id = run.id or 0
    if not _retry_due(run, work.now):
        return _result(stream.name, "waiting", run, late)
    if run.state in (COLLECTING, HASHING):
        expire_dead_claim(work.store, run, work.now)
        logger.info("run %s: resuming interrupted %s run", run_id, run.state)
        action = "resumed"
    elif run.state == AWAITING_TIMESTAMP:
        logger.info("run %s: retrying timestamp (attempt %d)", run_id, run.attempts + 1)
        action = "retried"
    else:
        return _result(stream.name, "waiting", run, late)
    summary = pipeline.resume(
        work.settings, work.store, run_id, owner=work.owner, anchor=stream.anchor
    )
    return _result(stream.name, action, summary.run, late, summary.hashed_now)


def _retry_due(run: Run, now: datetime) -> bool:
    return run.next_retry_at is None or run.next_retry_at <= now


def _result(
    stream: str, action: str, run: Run, late: bool, hashed_now: int = 0
) -> DueResult:
    return DueResult(
        stream=stream,
        period=run.period,
        action=action,
        run=run.id,
        state=run.state,
        root=run.root.hex() if run.root else None,
        items=run.item_count,
        partial=run.partial,
        late=late,
        error=run.last_error if run.state != COMPLETE else None,
        next_retry_at=run.next_retry_at.isoformat() if run.next_retry_at else None,
        hashed_now=hashed_now,
    )


def _failed(
    work: _Pass,
    stream: str,
    period: str,
    run: Run | None,
    late: bool,
    exc: NotaryError,
) -> DueResult:
    logger.error("stream %s period %s: failed: %s", stream, period, exc.message)
    result = DueResult(stream, period, "failed", late=late, error=exc.message)
    if run is None:
        setback = work.setbacks.record(stream, period, exc.message, work.now)
        result.next_retry_at = setback.next_retry_at.isoformat()
    elif run.id is not None:
        fresh = _record_failure(work.store, run.id, exc.message)
        result.run, result.state = fresh.id, fresh.state
        result.next_retry_at = (
            fresh.next_retry_at.isoformat() if fresh.next_retry_at else None
        )
    return result


def _record_failure(store: Store, run_id: int, message: str) -> Run:
    """Count a failed attempt on a run and set its next retry (exponential backoff)."""
    run = store.get_run(run_id)
    attempts = run.attempts + 1
    delay = min(pipeline.RETRY_BASE * 2 ** (attempts - 1), pipeline.RETRY_MAX)
    return store.update_run(
        run_id, attempts=attempts, next_retry_at=utcnow() + delay, last_error=message
    )


def source_for(stream: StreamConfig, period: str) -> str:
    """Return the stream's source for a period: ``{period:<strftime>}`` placeholders of
    the ``source`` template filled from the period's first day (00:00)."""
    return periods.fill(stream.source, period)


def source_options(stream: StreamConfig) -> dict[str, Any]:
    """Return the options a stream passes to its sources (S3 endpoint, region and
    addressing style)."""
    if "://" not in stream.source:
        return {}
    options = {
        "endpoint_url": stream.endpoint_url,
        "region": stream.region,
        "addressing_style": stream.addressing_style,
    }
    return {key: value for key, value in options.items() if value is not None}


def upgrade_anchors(settings: Settings, store: Store) -> None:
    """Move pending anchors on; anchor complete runs of anchored streams lacking one.

    Calls ``notary.anchor.upgrade_pending``, which connects only when there is work.
    """
    anchored_streams = any(stream.anchor for stream in settings.streams)
    if not anchored_streams and not _pending_anchor_runs(store):
        return
    try:
        module = importlib.import_module("notary.anchor")
    except ImportError:
        return
    upgrade_pending = getattr(module, "upgrade_pending", None)
    if upgrade_pending is None:
        return
    try:
        upgrade_pending(settings, store)
    except Exception as exc:
        logger.warning("pending anchors: upgrade failed: %s", exc)


# webhook ------------------------------------------------------------------------------


def event_for(result: DueResult) -> str | None:
    """Return the webhook event a result reports: failed, partial, late or none."""
    if result.action == "failed":
        return "run.failed"
    if result.action in ("busy", "waiting"):
        return None
    if result.partial:
        return "run.partial"
    if result.late and result.action == "attested":
        return "run.late"
    return None


def _notify(settings: Settings, result: DueResult) -> None:
    event = event_for(result)
    if event is None or not settings.webhook_url:
        return
    document = {"event": event, "time": utcnow().isoformat(), **result.to_json()}
    post_webhook(settings.webhook_url, document)


def post_webhook(url: str, document: dict[str, Any]) -> bool:
    """POST one JSON event; return False (and log a WARNING) when it fails.

    The URL is never logged: it may carry a token.
    """
    try:
        response = httpx.post(url, json=document, timeout=WEBHOOK_TIMEOUT)
        response.raise_for_status()
    except httpx.HTTPError as exc:
        logger.warning("webhook %s: not delivered: %s", document.get("event"), exc)
        return False
    logger.info(
        "webhook %s: delivered (run %s)", document.get("event"), document.get("run")
    )
    return True


# status -------------------------------------------------------------------------------


def status(
    settings: Settings,
    store: Store,
    now: datetime | None = None,
    setbacks: Setbacks | None = None,
) -> list[dict[str, Any]]:
    """Return, per configured stream: last completed period, next fire time, due
    periods, what blocks the oldest due period, and runs waiting for a timestamp, an
    anchor, or in progress; then unfinished runs of streams not configured in this
    home (``configured`` false), which this home never works on.

    Raises ConfigError for an unusable stream (see `check_streams`). ``blocked``
    checks whether a local source folder exists; S3 sources are not contacted.
    """
    check_streams(settings.streams)
    moment = now or utcnow()
    pending = _pending_anchor_runs(store)
    found = [
        _stream_status(stream, store, moment, pending, setbacks)
        for stream in settings.streams
    ]
    return found + _foreign_status(settings, store, pending)


def _stream_status(
    stream: StreamConfig,
    store: Store,
    now: datetime,
    pending: set[int],
    setbacks: Setbacks | None,
) -> dict[str, Any]:
    runs = store.list_runs(stream.name)
    completed = sorted(run.period for run in runs if run.state == COMPLETE)
    fire = next_fire(stream, now)
    due = due_periods(stream, now, completed)
    by_period = {run.period: run for run in runs}
    return {
        "stream": stream.name,
        "configured": True,
        "schedule": stream.schedule,
        "timezone": stream.timezone,
        "last_completed": completed[-1] if completed else None,
        "next_fire": fire.isoformat() if fire else None,
        "due": due,
        "blocked": _blocker(stream, due, by_period, setbacks),
        **_run_lists(runs, pending),
    }


def _run_lists(runs: Sequence[Run], pending: set[int]) -> dict[str, Any]:
    return {
        "awaiting_timestamp": [
            _run_brief(run) for run in runs if run.state == AWAITING_TIMESTAMP
        ],
        "awaiting_anchor": [_run_brief(run) for run in runs if run.id in pending],
        "in_progress": [
            _run_brief(run) for run in runs if run.state in (COLLECTING, HASHING)
        ],
    }


def _blocker(
    stream: StreamConfig,
    due: Sequence[str],
    runs: dict[str, Run],
    setbacks: Setbacks | None,
) -> str | None:
    """Return why the oldest due period is not attested (``"2026-09: <reason>"``)."""
    if not due:
        return None
    period = due[0]
    setback = setbacks.get(stream.name, period) if setbacks else None
    if setback is not None:
        return f"{period}: {setback.error}"
    run = runs.get(period)
    if run is not None:
        reason = f"{period}: run {run.id} {run.state}"
        return f"{reason}: {run.last_error}" if run.last_error else reason
    source = source_for(stream, period)
    if "://" not in source and not os.path.exists(source):
        return f"{period}: source {source} does not exist"
    return None


def _foreign_status(
    settings: Settings, store: Store, pending: set[int]
) -> list[dict[str, Any]]:
    configured = {stream.name for stream in settings.streams}
    foreign: dict[str, list[Run]] = {}
    for run in store.list_runs():
        if run.stream not in configured:
            foreign.setdefault(run.stream, []).append(run)
    found: list[dict[str, Any]] = []
    for name, runs in sorted(foreign.items()):
        lists = _run_lists(runs, pending)
        if not any(lists.values()):
            continue
        completed = sorted(run.period for run in runs if run.state == COMPLETE)
        found.append(
            {
                "stream": name,
                "configured": False,
                "schedule": None,
                "timezone": None,
                "last_completed": completed[-1] if completed else None,
                "next_fire": None,
                "due": [],
                "blocked": None,
                **lists,
            }
        )
    return found


def _run_brief(run: Run) -> dict[str, Any]:
    return {
        "run": run.id,
        "period": run.period,
        "state": run.state,
        "attempts": run.attempts,
        "next_retry_at": run.next_retry_at.isoformat() if run.next_retry_at else None,
        "claim_owner": run.claim_owner,
        "last_error": run.last_error,
    }


def _pending_anchor_runs(store: Store) -> set[int]:
    return {a.run_id for a in store.anchors() if a.state in PENDING_ANCHOR_STATES}


# the daemon ---------------------------------------------------------------------------


def build_scheduler(
    settings: Settings, store: Store, setbacks: Setbacks | None = None
) -> BackgroundScheduler:
    """Return a scheduler (not started) with a catch-up job that runs at once, one cron
    job per stream and the retry job; raises ConfigError for an unusable stream.

    Jobs run one at a time (one worker thread); a fire missed while another pass ran is
    run late rather than dropped, and piled-up fires of one job coalesce into one. The
    retry job is a full pass: it also tries again, with ``setbacks`` backoff, periods
    whose first attempt failed before a run existed.
    """
    check_streams(settings.streams)
    setbacks = setbacks or Setbacks()
    scheduler = BackgroundScheduler(
        executors={"default": ThreadPoolExecutor(1)},
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        timezone=UTC,
    )
    scheduler.add_job(
        _guarded_pass,
        args=(settings, store, None, setbacks),
        id="start",
        name="catch-up pass at start",
    )
    for stream in settings.streams:
        scheduler.add_job(
            _guarded_pass,
            trigger_for(stream),
            args=(settings, store, [stream.name], setbacks),
            id=f"stream:{stream.name}",
            name=f"attest {stream.name}",
        )
    scheduler.add_job(
        _guarded_pass,
        IntervalTrigger(seconds=RETRY_POLL.total_seconds(), timezone=UTC),
        args=(settings, store, None, setbacks),
        id="retry",
        name="retry failed periods, timestamps and interrupted runs",
    )
    return scheduler


def _guarded_pass(
    settings: Settings,
    store: Store,
    streams: Sequence[str] | None,
    setbacks: Setbacks,
) -> None:
    if pipeline.STOP.is_set():
        return
    try:
        results = run_due(settings, store, streams=streams, setbacks=setbacks)
    except pipeline.Stopped:
        logger.info("scheduler: pass stopped; an unfinished run resumes next time")
        return
    except NotaryError as exc:
        # Such as the database down: the retry pass tries again.
        logger.error("scheduler pass failed: %s", exc.message)
        return
    except Exception:
        logger.exception("scheduler pass failed")
        return
    for result in results:
        logger.info(
            "stream %s period %s: %s (run %s, %s)",
            result.stream,
            result.period,
            result.action,
            result.run,
            result.state,
        )


def run_daemon(settings: Settings, store: Store | None = None) -> None:
    """Run passes at start, at each stream's fires and every `RETRY_POLL`, until
    SIGTERM or SIGINT; then return once the running pass has unwound.

    A signal sets `notary.attest.STOP`: hashing stops after saving what it hashed (the
    run resumes on the next start) and no further period is started. Installs the two
    signal handlers for its duration, so it must run in the main thread.
    """
    store = store or Store(settings.database_url)
    scheduler = build_scheduler(settings, store, Setbacks())
    stopping = threading.Event()
    pipeline.STOP.clear()

    def stop(signum: int, _frame: FrameType | None) -> None:
        logger.info("scheduler: signal %d, stopping after the running job", signum)
        pipeline.STOP.set()
        stopping.set()

    installed = {
        number: signal.signal(number, stop)
        for number in (signal.SIGTERM, signal.SIGINT)
    }
    try:
        scheduler.start()
        for job in scheduler.get_jobs():
            logger.info("scheduler: job %s (%s)", job.id, job.trigger)
        while not stopping.wait(STOP_POLL):
            pass
        scheduler.shutdown(wait=True)
    finally:
        for number, handler in installed.items():
            signal.signal(number, handler)
    logger.info("scheduler: stopped")
