"""Periods, catch-up and fire times of the scheduler, with frozen clocks."""

from __future__ import annotations

import http.server
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from notary import attest as pipeline
from notary import schedule
from notary.config import Settings, StreamConfig
from notary.errors import ConfigError, NoItemsError, RunConflictError, SourceError
from notary.store import Store
from notary.store.models import AWAITING_TIMESTAMP, COMPLETE, HASHING, Anchor

CHICAGO = ZoneInfo("America/Chicago")
LOS_ANGELES = ZoneInfo("America/Los_Angeles")


def _stream(**values: Any) -> StreamConfig:
    values.setdefault("name", "logs")
    values.setdefault("source", "/srv/snapshots/{period:%Y-%m}/")
    return StreamConfig(**values)


# periods ------------------------------------------------------------------------------


def test_period_for_fire_on_first_of_month_is_previous_month() -> None:
    fire = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)

    assert schedule.period_for(fire) == "2026-11"


def test_period_for_january_fire_is_previous_december() -> None:
    fire = datetime(2027, 1, 1, 0, 0, tzinfo=UTC)

    assert schedule.period_for(fire) == "2026-12"


def test_period_for_uses_stream_timezone_not_utc() -> None:
    # 2021-03-01 03:00 UTC is still 2021-02-28 21:00 in Chicago.
    fire = datetime(2021, 3, 1, 3, 0, tzinfo=UTC)

    assert schedule.period_for(fire) == "2021-02"
    assert schedule.period_for(fire, CHICAGO) == "2021-01"


def test_due_periods_service_down_three_months_catches_up_three_once_each() -> None:
    stream = _stream(first_period="2026-06")
    completed = ["2026-06", "2026-07", "2026-08"]
    now = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)

    due = schedule.due_periods(stream, now, completed)

    assert due == ["2026-09", "2026-10", "2026-11"]
    assert schedule.due_periods(stream, now, completed + due) == []


def test_due_periods_without_first_period_only_last_finished_month() -> None:
    now = datetime(2026, 12, 4, 16, 0, tzinfo=UTC)

    assert schedule.due_periods(_stream(), now, []) == ["2026-11"]


def test_due_periods_first_period_in_future_is_empty() -> None:
    stream = _stream(first_period="2027-01")
    now = datetime(2026, 12, 4, tzinfo=UTC)

    assert schedule.due_periods(stream, now, []) == []


def test_due_periods_gap_in_completed_is_due_again() -> None:
    stream = _stream(first_period="2026-08")
    now = datetime(2026, 12, 4, tzinfo=UTC)

    due = schedule.due_periods(stream, now, ["2026-08", "2026-10"])

    assert due == ["2026-09", "2026-11"]


def test_is_late_only_before_last_finished_month() -> None:
    now = datetime(2026, 12, 4, tzinfo=UTC)

    assert schedule.is_late("2026-10", _stream(), now)
    assert not schedule.is_late("2026-11", _stream(), now)


def test_zone_unknown_name_raises_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown timezone 'Mars/Olympus'"):
        schedule.zone(_stream(timezone="Mars/Olympus"))


def test_trigger_bad_cron_raises_config_error() -> None:
    with pytest.raises(ConfigError, match="bad schedule '61 2 1 \\* \\*'"):
        schedule.trigger_for(_stream(schedule="61 2 1 * *"))


def test_trigger_cron_that_never_fires_raises_config_error() -> None:
    with pytest.raises(ConfigError, match="schedule '0 2 31 2 \\*' never fires"):
        schedule.trigger_for(_stream(schedule="0 2 31 2 *"))


def test_check_streams_unknown_placeholder_raises_config_error() -> None:
    stream = _stream(source="/srv/{host}/{period:%Y-%m}/")

    with pytest.raises(ConfigError, match=r"stream logs: source template .*'host'"):
        schedule.check_streams([stream])


def test_check_streams_bad_first_period_raises_config_error() -> None:
    with pytest.raises(ConfigError, match="stream logs: bad first_period '2026-13'"):
        schedule.check_streams([_stream(first_period="2026-13")])


# due only after the fire that follows the period --------------------------------------


def test_last_due_period_before_fire_on_the_first_is_month_before_last() -> None:
    stream = _stream(schedule="0 2 1 * *")

    before = schedule.last_due_period(stream, datetime(2026, 12, 1, 1, 59, tzinfo=UTC))
    at_fire = schedule.last_due_period(stream, datetime(2026, 12, 1, 2, 0, tzinfo=UTC))

    assert (before, at_fire) == ("2026-10", "2026-11")


def test_last_due_period_fire_time_in_stream_timezone() -> None:
    stream = _stream(schedule="0 2 1 * *", timezone="America/Chicago")

    # 02:00 CST on 2026-12-01 is 08:00 UTC.
    before = schedule.last_due_period(stream, datetime(2026, 12, 1, 7, 59, tzinfo=UTC))
    after = schedule.last_due_period(stream, datetime(2026, 12, 1, 8, 0, tzinfo=UTC))

    assert (before, after) == ("2026-10", "2026-11")


def test_last_due_period_fire_mid_month_waits_for_it() -> None:
    stream = _stream(schedule="0 6 15 * *")

    early = schedule.last_due_period(stream, datetime(2026, 12, 10, tzinfo=UTC))
    late = schedule.last_due_period(stream, datetime(2026, 12, 15, 6, 0, tzinfo=UTC))

    assert (early, late) == ("2026-10", "2026-11")


def test_last_due_period_leap_day_schedule_finds_fire_years_back() -> None:
    stream = _stream(schedule="0 2 29 2 *")

    last = schedule.last_due_period(stream, datetime(2027, 6, 1, tzinfo=UTC))

    assert last == "2024-01"


def test_due_periods_catch_up_stops_at_last_fire() -> None:
    stream = _stream(first_period="2026-08")
    now = datetime(2026, 12, 1, 1, 0, tzinfo=UTC)

    assert schedule.due_periods(stream, now, []) == ["2026-08", "2026-09", "2026-10"]


def test_source_for_fills_period_placeholders_from_first_day() -> None:
    stream = _stream(source="s3://audit/AWSLogs/{period:%Y/%m}/")

    assert schedule.source_for(stream, "2026-03") == "s3://audit/AWSLogs/2026/03/"


def test_source_options_only_for_s3_sources() -> None:
    s3 = _stream(source="s3://b/{period:%Y}/", endpoint_url="http://127.0.0.1:9")

    assert schedule.source_options(s3) == {"endpoint_url": "http://127.0.0.1:9"}
    assert schedule.source_options(_stream(endpoint_url="http://127.0.0.1:9")) == {}


# fire times ---------------------------------------------------------------------------


def test_fire_times_monthly_chicago_across_march_2021_one_per_month() -> None:
    stream = _stream(schedule="0 2 1 * *", timezone="America/Chicago")
    start = datetime(2021, 1, 15, tzinfo=UTC)

    fires = schedule.fire_times(stream, start, 5)

    local = [f.astimezone(CHICAGO) for f in fires]
    assert [(t.month, t.day, t.hour) for t in local] == [
        (2, 1, 2),
        (3, 1, 2),
        (4, 1, 2),
        (5, 1, 2),
        (6, 1, 2),
    ]
    # 2021-03-14 changed CST (-6) to CDT (-5): one hour less in UTC from April on.
    assert [f.astimezone(UTC).hour for f in fires] == [8, 8, 7, 7, 7]
    periods = [schedule.period_for(f, CHICAGO) for f in fires]
    assert periods == ["2021-01", "2021-02", "2021-03", "2021-04", "2021-05"]


def test_fire_times_monthly_inside_dst_gap_fires_once_after_the_gap() -> None:
    # 02:30 does not exist in Chicago on 2021-03-14.
    stream = _stream(schedule="30 2 14 * *", timezone="America/Chicago")
    start = datetime(2021, 2, 20, tzinfo=UTC)

    fires = schedule.fire_times(stream, start, 3)

    assert [f.astimezone(UTC) for f in fires] == [
        datetime(2021, 3, 14, 8, 30, tzinfo=UTC),
        datetime(2021, 4, 14, 7, 30, tzinfo=UTC),
        datetime(2021, 5, 14, 7, 30, tzinfo=UTC),
    ]


def test_fire_times_daily_midnight_los_angeles_across_2022_03_13_daily() -> None:
    stream = _stream(schedule="0 0 * * *", timezone="America/Los_Angeles")
    start = datetime(2022, 3, 10, 12, 0, tzinfo=UTC)

    fires = schedule.fire_times(stream, start, 6)

    local = [f.astimezone(LOS_ANGELES) for f in fires]
    assert [t.day for t in local] == [11, 12, 13, 14, 15, 16]
    assert all((t.hour, t.minute) == (0, 0) for t in local)
    instants = [f.astimezone(UTC) for f in fires]
    hours = [(b - a) / timedelta(hours=1) for a, b in itertools.pairwise(instants)]
    assert hours == [24, 24, 23, 24, 24]


def test_fire_times_fall_back_ambiguous_time_fires_once() -> None:
    stream = _stream(schedule="30 1 * * *", timezone="America/Los_Angeles")
    start = datetime(2022, 11, 5, 12, 0, tzinfo=UTC)

    fires = schedule.fire_times(stream, start, 3)

    assert [f.astimezone(LOS_ANGELES).day for f in fires] == [6, 7, 8]


def test_next_fire_now_inside_repeated_hour_skips_fired_first_occurrence() -> None:
    stream = _stream(schedule="30 1 * * *", timezone="America/Los_Angeles")
    # 01:10 PST on 2022-11-06: the 01:30 PDT fire of that day is already past.
    now = datetime(2022, 11, 6, 9, 10, tzinfo=UTC)

    fire = schedule.next_fire(stream, now)

    assert fire is not None
    assert fire.astimezone(UTC) == datetime(2022, 11, 7, 9, 30, tzinfo=UTC)


def test_next_fire_is_strictly_after_now() -> None:
    stream = _stream(schedule="0 2 1 * *")
    now = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)

    assert schedule.next_fire(stream, now) == datetime(2027, 1, 1, 2, 0, tzinfo=UTC)


def test_build_scheduler_one_job_per_stream_and_retry_job(tmp_path: Path) -> None:
    settings = _settings(tmp_path, [_stream(), _stream(name="other")])
    store = Store(settings.database_url)

    scheduler = schedule.build_scheduler(settings, store)

    ids = sorted(job.id for job in scheduler.get_jobs())
    assert ids == ["retry", "start", "stream:logs", "stream:other"]


# one pass (the pipeline replaced by a stand-in writing real rows) ---------------------


def _settings(tmp_path: Path, streams: list[StreamConfig]) -> Settings:
    return Settings(
        home=tmp_path,
        database_url=f"sqlite:///{tmp_path / 'notary.db'}",
        streams=streams,
    )


class _FakePipeline:
    """Stand-in for attest/resume: creates and completes runs in a real store."""

    def __init__(self, store: Store, seal: bool = True) -> None:
        self.store = store
        self.seal = seal
        self.attested: list[tuple[str, str, list[str]]] = []
        self.resumed: list[int] = []

    def attest(self, settings: Settings, store: Store, **kw: Any) -> Any:
        self.attested.append((kw["stream"], kw["period"], kw["paths"]))
        run = store.create_run(
            stream=kw["stream"], period=kw["period"], algorithm="sha256", source="[]"
        )
        state = COMPLETE if self.seal else AWAITING_TIMESTAMP
        return pipeline.RunSummary(store.update_run(run.id or 0, state=state))

    def resume(self, settings: Settings, store: Store, run_id: int, **kw: Any) -> Any:
        self.resumed.append(run_id)
        return pipeline.RunSummary(store.update_run(run_id, state=COMPLETE))


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> _FakePipeline:
    store = Store(f"sqlite:///{tmp_path / 'notary.db'}")
    stand_in = _FakePipeline(store)
    monkeypatch.setattr(pipeline, "attest", stand_in.attest)
    monkeypatch.setattr(pipeline, "resume", stand_in.resume)
    return stand_in


def test_run_due_three_missed_months_attested_in_order_then_nothing(
    fake: _FakePipeline, tmp_path: Path
) -> None:
    settings = _settings(tmp_path, [_stream(first_period="2026-09")])
    now = datetime(2026, 12, 1, 2, 0, 5, tzinfo=UTC)

    first = schedule.run_due(settings, fake.store, now)
    second = schedule.run_due(settings, fake.store, now)

    assert [(r.period, r.action, r.late) for r in first] == [
        ("2026-09", "attested", True),
        ("2026-10", "attested", True),
        ("2026-11", "attested", False),
    ]
    assert [a[2] for a in fake.attested] == [
        ["/srv/snapshots/2026-09/"],
        ["/srv/snapshots/2026-10/"],
        ["/srv/snapshots/2026-11/"],
    ]
    assert second == []


def test_run_due_stops_stream_at_run_awaiting_timestamp(
    fake: _FakePipeline, tmp_path: Path
) -> None:
    fake.seal = False
    settings = _settings(tmp_path, [_stream(first_period="2026-10")])
    now = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)

    results = schedule.run_due(settings, fake.store, now)

    assert [(r.period, r.state) for r in results] == [("2026-10", AWAITING_TIMESTAMP)]


def test_run_due_awaiting_timestamp_waits_for_next_retry(
    fake: _FakePipeline, tmp_path: Path
) -> None:
    settings = _settings(tmp_path, [_stream(first_period="2026-11")])
    run = fake.store.create_run(
        stream="logs", period="2026-11", algorithm="sha256", source="[]"
    )
    now = datetime(2026, 12, 2, tzinfo=UTC)
    fake.store.update_run(
        run.id or 0, state=AWAITING_TIMESTAMP, next_retry_at=now + timedelta(minutes=5)
    )

    early = schedule.run_due(settings, fake.store, now)
    later = schedule.run_due(settings, fake.store, now + timedelta(minutes=6))

    assert [r.action for r in early] == ["waiting"]
    assert [(r.action, r.state) for r in later] == [("retried", COMPLETE)]
    assert fake.resumed == [run.id]


def test_run_due_interrupted_run_of_dead_local_process_resumed(
    fake: _FakePipeline, tmp_path: Path
) -> None:
    settings = _settings(tmp_path, [_stream(first_period="2026-11")])
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    owner = f"{socket.gethostname()}:{dead.stdout.strip()}"
    run = fake.store.create_run(
        stream="logs",
        period="2026-11",
        algorithm="sha256",
        source="[]",
        owner=owner,
        lease=timedelta(hours=1),
    )
    fake.store.update_run(run.id or 0, state=HASHING)

    results = schedule.run_due(settings, fake.store, datetime(2026, 12, 2, tzinfo=UTC))

    assert [(r.action, r.state) for r in results] == [("resumed", COMPLETE)]
    assert fake.store.get_run(run.id or 0).claim_expires is not None


def test_run_due_failure_without_run_reported_and_stream_stops(
    fake: _FakePipeline, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_items(*_a: Any, **_k: Any) -> Any:
        raise NoItemsError("sources /srv/snapshots/2026-10/: nothing to attest")

    monkeypatch.setattr(pipeline, "attest", no_items)
    settings = _settings(tmp_path, [_stream(first_period="2026-10")])

    results = schedule.run_due(settings, fake.store, datetime(2026, 12, 2, tzinfo=UTC))

    assert [(r.period, r.action) for r in results] == [("2026-10", "failed")]
    assert "nothing to attest" in (results[0].error or "")


def test_run_due_claimed_elsewhere_is_busy(
    fake: _FakePipeline, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def conflict(*_a: Any, **kw: Any) -> Any:
        raise RunConflictError("exists", run=7)

    monkeypatch.setattr(pipeline, "attest", conflict)
    settings = _settings(tmp_path, [_stream(first_period="2026-10")])

    results = schedule.run_due(settings, fake.store, datetime(2026, 12, 2, tzinfo=UTC))

    assert [(r.period, r.action, r.run) for r in results] == [("2026-10", "busy", 7)]


def test_status_reports_last_completed_next_fire_and_waiting(
    fake: _FakePipeline, tmp_path: Path
) -> None:
    settings = _settings(tmp_path, [_stream(first_period="2026-09")])
    now = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)
    schedule.run_due(settings, fake.store, datetime(2026, 11, 1, 3, 0, tzinfo=UTC))
    fake.seal = False
    schedule.run_due(settings, fake.store, now)

    (stream,) = schedule.status(settings, fake.store, now)

    assert stream["last_completed"] == "2026-10"
    assert stream["next_fire"] == "2027-01-01T02:00:00+00:00"
    assert [r["period"] for r in stream["awaiting_timestamp"]] == ["2026-11"]
    assert stream["due"] == ["2026-11"]
    json.dumps(stream)


# claims -------------------------------------------------------------------------------


def test_is_dead_local_owner_only_for_gone_pid_on_this_host() -> None:
    host = socket.gethostname()

    assert not schedule.is_dead_local_owner(f"{host}:{os.getpid()}")
    assert not schedule.is_dead_local_owner(f"{host}:1")
    assert not schedule.is_dead_local_owner("another-host:999999999")
    assert not schedule.is_dead_local_owner(None)
    assert schedule.is_dead_local_owner(f"{host}:999999999")


# webhook ------------------------------------------------------------------------------


def test_event_for_failed_partial_late_only() -> None:
    def result(**kw: Any) -> schedule.DueResult:
        return schedule.DueResult("logs", "2026-11", **kw)

    assert schedule.event_for(result(action="failed")) == "run.failed"
    assert schedule.event_for(result(action="attested", partial=True)) == "run.partial"
    assert schedule.event_for(result(action="attested", late=True)) == "run.late"
    assert schedule.event_for(result(action="attested")) is None
    assert schedule.event_for(result(action="busy", late=True)) is None


def test_post_webhook_failure_returns_false_and_warns(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def refuse(*_a: Any, **_k: Any) -> Any:
        raise httpx.ConnectError("connection refused")

    monkeypatch.setattr(httpx, "post", refuse)

    delivered = schedule.post_webhook("http://127.0.0.1:9/hook", {"event": "run.late"})

    assert not delivered
    assert "run.late: not delivered" in caplog.text
    assert "127.0.0.1:9" not in caplog.text


def test_run_due_webhook_posts_late_event(
    fake: _FakePipeline, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    posted: list[dict[str, Any]] = []
    monkeypatch.setattr(
        schedule, "post_webhook", lambda url, doc: posted.append(doc) or True
    )
    settings = _settings(tmp_path, [_stream(first_period="2026-10")])
    settings.webhook_url = "http://127.0.0.1:9/hook"

    schedule.run_due(settings, fake.store, datetime(2026, 12, 2, tzinfo=UTC))

    assert [(d["event"], d["period"]) for d in posted] == [("run.late", "2026-10")]


# anchors ------------------------------------------------------------------------------


def _pending_anchor(store: Store) -> None:
    run = store.create_run(
        stream="x", period="2026-01", algorithm="sha256", source="[]"
    )
    with store.session() as session:
        session.add(
            Anchor(
                run_id=run.id or 0,
                chain_id=1,
                contract="0x0",
                root=b"\0" * 32,
                sender="0x0",
                state="pending",
            )
        )


def test_run_due_upgrades_pending_anchors_and_survives_failure(
    fake: _FakePipeline,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    import notary.anchor

    calls: list[Store] = []

    def upgrade(settings: Settings, store: Store) -> list[Any]:
        calls.append(store)
        raise RuntimeError("rpc down")

    monkeypatch.setattr(notary.anchor, "upgrade_pending", upgrade, raising=False)
    _pending_anchor(fake.store)

    schedule.run_due(
        _settings(tmp_path, []), fake.store, datetime(2026, 12, 2, tzinfo=UTC)
    )

    assert calls == [fake.store]
    assert "pending anchors: upgrade failed: rpc down" in caplog.text


def test_post_webhook_delivers_json_to_local_receiver() -> None:
    received: list[dict[str, Any]] = []

    class Receiver(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers["Content-Length"])
            received.append(json.loads(self.rfile.read(length)))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *_args: Any) -> None:
            return

    server = http.server.HTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.handle_request, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}/hook"

    delivered = schedule.post_webhook(url, {"event": "run.failed", "run": 3})

    thread.join(10)
    server.server_close()
    assert delivered
    assert received == [{"event": "run.failed", "run": 3}]


# due only after the fire (passes) -----------------------------------------------------


def test_run_due_before_first_fire_after_month_end_leaves_month_alone(
    fake: _FakePipeline, tmp_path: Path
) -> None:
    settings = _settings(tmp_path, [_stream(first_period="2026-11")])

    early = schedule.run_due(settings, fake.store, datetime(2026, 12, 1, 1, tzinfo=UTC))
    due = schedule.run_due(settings, fake.store, datetime(2026, 12, 1, 2, tzinfo=UTC))

    assert early == []
    assert [(r.period, r.action) for r in due] == [("2026-11", "attested")]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"schedule": "61 2 1 * *"}, "bad schedule"),
        ({"schedule": "0 2 31 2 *"}, "never fires"),
        ({"source": "/srv/{host}/{period:%Y-%m}/"}, "source template"),
    ],
)
def test_run_due_unusable_stream_raises_config_error_before_any_work(
    fake: _FakePipeline, tmp_path: Path, values: dict[str, str], message: str
) -> None:
    settings = _settings(tmp_path, [_stream(name="good"), _stream(**values)])

    with pytest.raises(ConfigError, match=message):
        schedule.run_due(settings, fake.store, datetime(2026, 12, 2, tzinfo=UTC))
    with pytest.raises(ConfigError, match=message):
        schedule.status(settings, fake.store, datetime(2026, 12, 2, tzinfo=UTC))
    with pytest.raises(ConfigError, match=message):
        schedule.build_scheduler(settings, fake.store)
    assert fake.attested == []


def _home_with_stream(tmp_path: Path, schedule_line: str) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.toml").write_text(
        "[[stream]]\n"
        'name = "logs"\n'
        f'source = "{tmp_path}/snap/{{period:%Y-%m}}/"\n'
        f"schedule = {json.dumps(schedule_line)}\n",
        encoding="utf-8",
    )
    return home


def test_cli_run_due_bad_cron_exits_2_without_attesting(
    fake: _FakePipeline,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from notary.cli import main

    monkeypatch.setenv("NOTARY_HOME", str(_home_with_stream(tmp_path, "0 2 31 2 *")))

    code = main(["schedule", "run-due"])

    assert code == 2
    assert "never fires" in capsys.readouterr().err
    assert fake.attested == []


# retries of periods that failed before a run existed ----------------------------------


def test_retry_job_retries_new_period_that_failed_before_a_run_existed(
    fake: _FakePipeline, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_attest = fake.attest
    outage = [True]

    def flaky(settings: Settings, store: Store, **kw: Any) -> Any:
        if outage[0]:
            raise SourceError(f"source {kw['paths'][0]}: object store unreachable")
        return real_attest(settings, store, **kw)

    monkeypatch.setattr(pipeline, "attest", flaky)
    settings = _settings(tmp_path, [_stream()])
    scheduler = schedule.build_scheduler(settings, fake.store)
    start, retry = scheduler.get_job("start"), scheduler.get_job("retry")
    now = datetime.now(UTC)

    start.func(*start.args)
    outage[0] = False
    retry.func(*retry.args)  # sooner than the backoff: not tried
    monkeypatch.setattr(schedule, "utcnow", lambda: now + schedule.RETRY_POLL * 2)
    retry.func(*retry.args)

    runs = fake.store.list_runs("logs")
    assert [(run.period, run.state) for run in runs] == [
        (schedule.last_due_period(settings.streams[0], now), COMPLETE)
    ]
    assert len(fake.attested) == 1


def test_run_due_setbacks_back_off_failed_new_period(
    fake: _FakePipeline, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def down(*_a: Any, **_k: Any) -> Any:
        raise SourceError("s3 bucket audit: unreachable")

    monkeypatch.setattr(pipeline, "attest", down)
    settings = _settings(tmp_path, [_stream(first_period="2026-11")])
    setbacks = schedule.Setbacks()
    now = datetime(2026, 12, 2, tzinfo=UTC)

    first = schedule.run_due(settings, fake.store, now, setbacks=setbacks)
    soon = schedule.run_due(
        settings, fake.store, now + timedelta(minutes=4), setbacks=setbacks
    )
    later = schedule.run_due(
        settings, fake.store, now + timedelta(minutes=5), setbacks=setbacks
    )

    assert [r.action for r in first + soon + later] == ["failed", "waiting", "failed"]
    assert soon[0].error == "s3 bucket audit: unreachable"
    assert later[0].next_retry_at == (now + timedelta(minutes=15)).isoformat()


# streams of another home --------------------------------------------------------------


def test_run_due_leaves_runs_of_streams_not_configured_here(
    fake: _FakePipeline, tmp_path: Path
) -> None:
    settings = _settings(tmp_path, [_stream(first_period="2026-11")])
    foreign = fake.store.create_run(
        stream="elsewhere", period="2026-11", algorithm="sha256", source="[]"
    )
    fake.store.update_run(foreign.id or 0, state=AWAITING_TIMESTAMP)
    now = datetime(2026, 12, 2, tzinfo=UTC)

    results = schedule.run_due(settings, fake.store, now)
    streams = schedule.status(settings, fake.store, now)

    assert [r.stream for r in results] == ["logs"]
    assert fake.resumed == []
    assert fake.store.get_run(foreign.id or 0).state == AWAITING_TIMESTAMP
    assert [(s["stream"], s["configured"]) for s in streams] == [
        ("logs", True),
        ("elsewhere", False),
    ]
    assert [r["run"] for r in streams[1]["awaiting_timestamp"]] == [foreign.id]


# stopping the daemon ------------------------------------------------------------------


@pytest.fixture
def stop_cleared() -> Iterator[None]:
    pipeline.STOP.clear()
    yield
    pipeline.STOP.clear()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
@pytest.mark.usefixtures("stop_cleared")
def test_run_daemon_signal_during_pass_sets_stop_and_returns_after_unwinding(
    fake: _FakePipeline,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    signum: int,
) -> None:
    hashing, unwound = threading.Event(), threading.Event()

    def slow(*_a: Any, **_k: Any) -> Any:
        hashing.set()
        pipeline.STOP.wait(10)
        unwound.set()
        raise pipeline.Stopped

    def send_signal() -> None:
        if hashing.wait(10):
            os.kill(os.getpid(), signum)

    monkeypatch.setattr(pipeline, "attest", slow)
    monkeypatch.setattr(schedule, "STOP_POLL", 0.05)
    threading.Thread(target=send_signal, daemon=True).start()
    handler = signal.getsignal(signum)
    started = time.monotonic()

    schedule.run_daemon(_settings(tmp_path, [_stream()]), fake.store)

    assert unwound.is_set()
    assert pipeline.STOP.is_set()
    assert time.monotonic() - started < 5
    assert signal.getsignal(signum) == handler


# empty periods and what blocks a stream -----------------------------------------------


def test_run_due_scheduled_attest_allows_empty_period(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    options: list[dict[str, Any]] = []

    def record(settings: Settings, store: Store, **kw: Any) -> Any:
        options.append(kw)
        raise SourceError("stop here")

    monkeypatch.setattr(pipeline, "attest", record)
    settings = _settings(tmp_path, [_stream(first_period="2026-11")])

    schedule.run_due(
        settings, Store(settings.database_url), datetime(2026, 12, 2, tzinfo=UTC)
    )

    assert [kw["allow_empty"] for kw in options] == [True]


def test_status_blocked_names_missing_source_folder(
    fake: _FakePipeline, tmp_path: Path
) -> None:
    source = str(tmp_path / "snap") + "/{period:%Y-%m}/"
    settings = _settings(tmp_path, [_stream(source=source, first_period="2026-09")])

    (stream,) = schedule.status(settings, fake.store, datetime(2026, 12, 2, tzinfo=UTC))

    assert (
        stream["blocked"] == f"2026-09: source {tmp_path}/snap/2026-09/ does not exist"
    )


def test_status_blocked_shows_daemon_setback_and_run_error(
    fake: _FakePipeline, tmp_path: Path
) -> None:
    settings = _settings(tmp_path, [_stream(first_period="2026-10")])
    now = datetime(2026, 12, 2, tzinfo=UTC)
    setbacks = schedule.Setbacks()
    setbacks.record("logs", "2026-10", "s3 bucket audit: unreachable", now)
    run = fake.store.create_run(
        stream="logs", period="2026-10", algorithm="sha256", source="[]"
    )
    fake.store.update_run(
        run.id or 0, state=AWAITING_TIMESTAMP, last_error="0 of 1 token(s)"
    )

    (daemon,) = schedule.status(settings, fake.store, now, setbacks)
    (stored,) = schedule.status(settings, fake.store, now)

    assert daemon["blocked"] == "2026-10: s3 bucket audit: unreachable"
    assert stored["blocked"] == (
        f"2026-10: run {run.id} awaiting_timestamp: 0 of 1 token(s)"
    )


# human output -------------------------------------------------------------------------


def test_result_line_failed_without_run_has_no_empty_label_and_escapes() -> None:
    from notary.cli.schedule_cmd import _result_line

    result = schedule.DueResult(
        "lo\x1bgs", "2026-11", "failed", error="s3 bucket a\rb: unreachable"
    )

    assert _result_line(result) == (
        "lo\\x1bgs 2026-11 failed: s3 bucket a\\x0db: unreachable"
    )


def test_print_status_escapes_names_and_marks_foreign_streams(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from notary.cli.schedule_cmd import _print_status

    _print_status(
        {
            "stream": "x\x1b[2J",
            "configured": False,
            "awaiting_timestamp": [],
            "awaiting_anchor": [],
            "in_progress": [],
        }
    )

    assert capsys.readouterr().out == (
        "x\\x1b[2J  (not configured here; its runs are left to their home)\n"
    )
