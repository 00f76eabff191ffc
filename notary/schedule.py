"""Periodic attestations: every configured stream attested once per period.

A stream's period is a calendar month (``YYYY-MM``). A fire of the stream's cron
schedule at local time T (in the stream's ``timezone``) attests the month before T; the
period, not the wall clock, identifies a run, so DST and time zones never change what
is attested.

A stream's ``source`` is a template filled per period: ``{period:<strftime format>}``
stands for the period's first day at 00:00, so ``s3://audit/AWSLogs/{period:%Y/%m}/``
is ``s3://audit/AWSLogs/2026/11/`` for 2026-11 and ``/srv/snap/{period:%Y-%m}/`` is
``/srv/snap/2026-11/``.

One pass (`run_due`) walks each stream from ``first_period`` (default: the last finished
month) up to the last finished month and, in ascending order:

- attests a period that has no run yet (a period older than the last finished one is
  *late*: logged and reported to the webhook);
- resumes a run that was interrupted while collecting or hashing (its holder died);
- retries a run awaiting a timestamp once its ``next_retry_at`` has passed.

A stream's walk stops at the first period whose run is not complete after the pass, so
every run's tree links to its immediate predecessor (the run chain has no holes).

Exactly one run per (stream, period), even with several processes or hosts on one
database: a new run is the insert of a row that is UNIQUE(stream, period); an existing
run is taken with a lease (``claim_owner``, ``claim_expires``) by a compare-and-set
UPDATE that succeeds only when the lease is free, ours or expired. The holder renews
the lease while it works; the claim of a holder that died expires and is taken over
(at once when the holder was a process of this host that no longer exists).

The daemon (`run_daemon`) runs a pass at start and at each fire of a stream's schedule,
and a retry pass every `RETRY_POLL` (which never starts new periods).
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import signal
import socket
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from types import FrameType
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.blocking import BlockingScheduler
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
        if fire is not None and fire <= now and periods.of(fire.astimezone(tz)) == month:
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
                f"stream {stream.name}: {exc.message}", stream=stream.name, hint=exc.hint
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
class _Pass:
    settings: Settings
    store: Store
    now: datetime
    owner: str
    new_runs: bool
    results: list[DueResult] = field(default_factory=list)


def run_due(
    settings: Settings,
    store: Store,
    now: datetime | None = None,
    owner: str | None = None,
    *,
    streams: Sequence[str] | None = None,
    new_runs: bool = True,
) -> list[DueResult]:
    """Run one scheduler pass (module docstring); return what it did, in order.

    ``streams`` limits the pass to those stream names; ``new_runs=False`` only finishes
    and retries existing runs. One stream's failure never stops the others: it becomes a
    ``failed`` result (and a webhook event).
    """
    work = _Pass(settings, store, now or utcnow(), owner or owner_id(), new_runs)
    for stream in settings.streams:
        if streams is None or stream.name in streams:
            _run_stream(work, stream)
    if streams is None:
        _retry_unscheduled(work)
        upgrade_anchors(settings, store)
    return work.results


def _run_stream(work: _Pass, stream: StreamConfig) -> None:
    runs = {run.period: run for run in work.store.list_runs(stream.name)}
    completed = [p for p, run in runs.items() if run.state == COMPLETE]
    for period in due_periods(stream, work.now, completed):
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
    if late:
        logger.warning("stream %s period %s: late, catching up", stream.name, period)
    logger.info("stream %s period %s: attesting", stream.name, period)
    summary = pipeline.attest(
        work.settings,
        work.store,
        stream=stream.name,
        period=period,
        paths=[source_for(stream, period)],
        owner=work.owner,
        anchor=stream.anchor,
        source_options=source_options(stream),
    )
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


def _retry_unscheduled(work: _Pass) -> None:
    """Retry due timestamps of runs whose stream is not configured (manual runs)."""
    configured = {stream.name for stream in work.settings.streams}
    for run in work.store.list_runs():
        if run.stream in configured or run.state != AWAITING_TIMESTAMP:
            continue
        if not _retry_due(run, work.now):
            continue
        try:
            summary = pipeline.resume(
                work.settings, work.store, run.id or 0, owner=work.owner
            )
            result = _result(run.stream, "retried", summary.run, False)
        except RunConflictError:
            result = _result(run.stream, "busy", run, False)
        except NotaryError as exc:
            result = _failed(work, run.stream, run.period, run, False, exc)
        work.results.append(result)
        _notify(work.settings, result)


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
    if run is not None and run.id is not None:
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
    """Move pending anchors on (``notary.anchor.upgrade_pending``) when available."""
    if not _pending_anchor_runs(store):
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
    settings: Settings, store: Store, now: datetime | None = None
) -> list[dict[str, Any]]:
    """Return, per configured stream: last completed period, next fire time, due
    periods, and runs waiting for a timestamp, an anchor, or in progress."""
    moment = now or utcnow()
    pending = _pending_anchor_runs(store)
    return [
        _stream_status(stream, store, moment, pending) for stream in settings.streams
    ]


def _stream_status(
    stream: StreamConfig, store: Store, now: datetime, pending: set[int]
) -> dict[str, Any]:
    runs = store.list_runs(stream.name)
    completed = sorted(run.period for run in runs if run.state == COMPLETE)
    fire = next_fire(stream, now)
    return {
        "stream": stream.name,
        "schedule": stream.schedule,
        "timezone": stream.timezone,
        "last_completed": completed[-1] if completed else None,
        "next_fire": fire.isoformat() if fire else None,
        "due": due_periods(stream, now, completed),
        "awaiting_timestamp": [
            _run_brief(run) for run in runs if run.state == AWAITING_TIMESTAMP
        ],
        "awaiting_anchor": [_run_brief(run) for run in runs if run.id in pending],
        "in_progress": [
            _run_brief(run) for run in runs if run.state in (COLLECTING, HASHING)
        ],
    }


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


def build_scheduler(settings: Settings, store: Store) -> BlockingScheduler:
    """Return a scheduler with one cron job per stream and the retry job.

    Jobs run one at a time (one worker thread); a fire missed while another pass ran is
    run late rather than dropped, and piled-up fires of one job coalesce into one.
    """
    scheduler = BlockingScheduler(
        executors={"default": ThreadPoolExecutor(1)},
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        timezone=UTC,
    )
    for stream in settings.streams:
        scheduler.add_job(
            _guarded_pass,
            trigger_for(stream),
            args=(settings, store, [stream.name], True),
            id=f"stream:{stream.name}",
            name=f"attest {stream.name}",
        )
    scheduler.add_job(
        _guarded_pass,
        IntervalTrigger(seconds=RETRY_POLL.total_seconds(), timezone=UTC),
        args=(settings, store, None, False),
        id="retry",
        name="retry timestamps and interrupted runs",
    )
    return scheduler


def _guarded_pass(
    settings: Settings, store: Store, streams: Sequence[str] | None, new_runs: bool
) -> None:
    try:
        results = run_due(settings, store, streams=streams, new_runs=new_runs)
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
    SIGTERM or SIGINT."""
    store = store or Store(settings.database_url)
    scheduler = build_scheduler(settings, store)

    def stop(signum: int, _frame: FrameType | None) -> None:
        logger.info("scheduler: signal %d, stopping", signum)
        if not scheduler.running:
            # Still in the first pass: unwind it; its run resumes on the next start.
            raise KeyboardInterrupt
        with contextlib.suppress(Exception):
            scheduler.shutdown(wait=False)

    # NOTE: installed before the first pass, so a SIGTERM at any moment stops cleanly.
    signal.signal(signal.SIGTERM, stop)
    try:
        _guarded_pass(settings, store, None, True)
    except KeyboardInterrupt:
        logger.info("scheduler: stopped during the first pass")
        return
    for job in scheduler.get_jobs():
        logger.info("scheduler: job %s (%s)", job.id, job.trigger)
    try:
        scheduler.start()
    except KeyboardInterrupt:
        logger.info("scheduler: interrupted, stopping")
