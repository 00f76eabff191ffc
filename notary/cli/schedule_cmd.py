"""Scheduler commands (``notary schedule run|run-due|status``) and ``notary diff``."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from notary.cli._common import load_settings, print_json, printable
from notary.errors import EXIT_OK, EXIT_OPERATIONAL

if TYPE_CHECKING:
    from notary.diff import Change, RunDiff
    from notary.schedule import DueResult

# NOTE: the scheduler and the store are imported inside the handlers, so that building
# the parser (every notary command does) does not load APScheduler and SQLAlchemy.

DAEMON_HELP = """\
Attest every configured stream once per period, unattended: a pass at start, then at
each fire of a stream's schedule, and a retry pass every few minutes for runs awaiting
a timestamp or interrupted and for periods whose first attempt failed (source missing,
object store or database down), with growing delays. SIGTERM or Ctrl-C (SIGINT) stops
it: hashing stops after saving what was hashed, no new period is started, and the
daemon exits 0 once the running pass has unwound (the run resumes on the next start);
a killed daemon loses no work either.
"""
RUN_DUE_HELP = """\
One catch-up pass, then exit (for cron, systemd timers, Kubernetes CronJobs): every
period from a stream's first_period up to the last due one without a complete run is
attested, oldest first; interrupted runs are resumed and timestamps retried. A period
is due once the stream's first scheduled fire after its end has passed. Only streams
configured here are worked on. Exit 2 for an unusable stream configuration (bad
schedule, time zone or source template); exit 3 when a run failed, or was worked on
and is still incomplete (e.g. no TSA answered); runs another process holds or whose
retry is not due yet do not count.
"""


def register(commands: Any, groups: dict[str, Any]) -> None:
    scheduler = groups["schedule"]
    daemon = scheduler.add_parser(
        "run", help="run the scheduler daemon", description=DAEMON_HELP
    )
    daemon.set_defaults(handler=cmd_run)

    due = scheduler.add_parser(
        "run-due", help="one catch-up pass, then exit", description=RUN_DUE_HELP
    )
    due.add_argument("--json", action="store_true", help="print one JSON document")
    due.set_defaults(handler=cmd_run_due)

    status = scheduler.add_parser("status", help="per stream: last, next, waiting")
    status.add_argument("--json", action="store_true", help="print one JSON document")
    status.set_defaults(handler=cmd_status)

    diff = commands.add_parser(
        "diff",
        help="items added, removed and changed between two runs",
        description="Compare two runs item by item (matched by exact path bytes).",
    )
    diff.add_argument("run_a", type=int, metavar="RUN_A", help="the earlier run")
    diff.add_argument("run_b", type=int, metavar="RUN_B", help="the later run")
    diff.add_argument("--json", action="store_true", help="print one JSON document")
    diff.set_defaults(handler=cmd_diff)


def cmd_run(args: argparse.Namespace) -> int:
    from notary import schedule
    from notary.store import Store

    settings = load_settings()
    schedule.run_daemon(settings, Store(settings.database_url))
    return EXIT_OK


def cmd_run_due(args: argparse.Namespace) -> int:
    from notary import schedule
    from notary.store import Store

    settings = load_settings()
    results = schedule.run_due(settings, Store(settings.database_url))
    code = EXIT_OPERATIONAL if any(_is_setback(r) for r in results) else EXIT_OK
    if args.json:
        print_json({"results": [r.to_json() for r in results]})
        return code
    if not results:
        print("nothing due")
    for result in results:
        print(_result_line(result))
    return code


def _is_setback(result: DueResult) -> bool:
    """A failure, or work done this pass that still left the run incomplete."""
    if result.action == "failed":
        return True
    return result.action not in ("busy", "waiting") and result.state != "complete"


def _result_line(result: DueResult) -> str:
    line = f"{printable(result.stream)} {result.period} {result.action}"
    if result.run is not None:
        line += f" run {result.run} ({result.state})"
    if result.late:
        line += " late"
    if result.partial:
        line += " partial"
    if result.error:
        line += f": {printable(result.error)}"
    # A run holds its retry time; a failed period without a run is tried again by the
    # next run-due.
    if result.run is not None and result.next_retry_at and result.state != "complete":
        line += f" (retry at {result.next_retry_at})"
    return line


def cmd_status(args: argparse.Namespace) -> int:
    from notary import schedule
    from notary.store import Store

    settings = load_settings()
    streams = schedule.status(settings, Store(settings.database_url))
    if args.json:
        print_json({"streams": streams})
        return EXIT_OK
    if not streams:
        print("no [[stream]] configured")
    for stream in streams:
        _print_status(stream)
    return EXIT_OK


def _print_status(stream: dict[str, Any]) -> None:
    name = printable(stream["stream"])
    if not stream["configured"]:
        print(f"{name}  (not configured here; its runs are left to their home)")
    else:
        print(f"{name}  ({printable(stream['schedule'])} {stream['timezone']})")
        print(f"  last completed      {stream['last_completed'] or '-'}")
        print(f"  next fire           {stream['next_fire'] or '-'}")
        print(f"  due                 {', '.join(stream['due']) or '-'}")
        if stream["blocked"]:
            print(f"  blocked             {printable(stream['blocked'])}")
    for label, key in (
        ("awaiting timestamp", "awaiting_timestamp"),
        ("awaiting anchor", "awaiting_anchor"),
        ("in progress", "in_progress"),
    ):
        for run in stream[key]:
            retry = f", retry at {run['next_retry_at']}" if run["next_retry_at"] else ""
            print(f"  {label:<19} run {run['run']} {run['period']}{retry}")


def cmd_diff(args: argparse.Namespace) -> int:
    from notary.diff import diff_runs
    from notary.store import Store

    settings = load_settings()
    result = diff_runs(Store(settings.database_url), args.run_a, args.run_b)
    if args.json:
        print_json(result.to_json())
        return EXIT_OK
    _print_diff(result)
    return EXIT_OK


def _print_diff(result: RunDiff) -> None:
    for path in result.added:
        print(f"added     {printable(path)}")
    for path in result.removed:
        print(f"removed   {printable(path)}")
    for change in result.changed:
        print(f"changed   {printable(change.path)}  ({_fields(change)})")
    for change in result.metadata_changed:
        print(f"metadata  {printable(change.path)}  ({_fields(change)})")
    counts = result.to_json()["counts"]
    print(
        f"run {result.run_a} -> run {result.run_b}: {counts['added']} added, "
        f"{counts['removed']} removed, {counts['changed']} changed, "
        f"{counts['metadata_changed']} metadata only, {counts['unchanged']} unchanged"
    )


def _fields(change: Change) -> str:
    return ", ".join(name.removeprefix("record.") for name in change.fields)
