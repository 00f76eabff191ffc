"""Commands of the run life cycle: init, attest, runs, show, export."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from notary import config
from notary import period as periods
from notary.cli._common import load_settings, print_json, printable
from notary.errors import EXIT_OK, EXIT_OPERATIONAL, UsageError

if TYPE_CHECKING:
    from notary import attest as pipeline
    from notary.hashing import Progress
    from notary.store import Store
    from notary.store.models import Run

# NOTE: the database and pipeline modules are imported inside the handlers, so that
# `notary --help` and the commands that do not need them start quickly.
COMPLETE = "complete"


def register(commands: Any, groups: dict[str, Any]) -> None:
    init = commands.add_parser("init", help="create the data directory and its config")
    init.add_argument("--json", action="store_true", help="print one JSON document")
    init.set_defaults(handler=cmd_init)

    attest = commands.add_parser(
        "attest",
        help="hash files into a tree and timestamp its root",
        description="Attest files or directories as one run of a stream for a period.",
    )
    attest.add_argument("paths", nargs="*", metavar="PATH", help="file or directory")
    attest.add_argument("--stream", help="stream name (required unless --resume)")
    attest.add_argument("--period", help="YYYY-MM (default: the previous month)")
    attest.add_argument("--algorithm", choices=config.ALGORITHMS, help="hash algorithm")
    attest.add_argument("--resume", type=int, metavar="RUN", help="finish run RUN")
    attest.add_argument("--anchor", action="store_true", help="also anchor the root")
    attest.add_argument("--workers", type=int, help="files hashed in parallel")
    attest.add_argument("--json", action="store_true", help="print one JSON document")
    attest.set_defaults(handler=cmd_attest)

    runs = commands.add_parser("runs", help="list runs")
    runs.add_argument("--stream", help="only this stream")
    runs.add_argument("--json", action="store_true", help="print one JSON document")
    runs.set_defaults(handler=cmd_runs)

    show = commands.add_parser("show", help="show one run")
    show.add_argument("run", type=int, metavar="RUN")
    show.add_argument("--items", action="store_true", help="list every item")
    show.add_argument("--json", action="store_true", help="print one JSON document")
    show.set_defaults(handler=cmd_show)

    export = commands.add_parser("export", help="write a run's proof bundle")
    export.add_argument("run", type=int, metavar="RUN")
    export.add_argument("-o", "--output", required=True, metavar="FILE.zip")
    export.add_argument(
        "--item",
        action="append",
        default=[],
        metavar="PATH",
        help="only this item (repeatable; default: every item)",
    )
    export.add_argument(
        "--force", action="store_true", help="replace an existing bundle file"
    )
    export.add_argument("--json", action="store_true", help="print one JSON document")
    export.set_defaults(handler=cmd_export)


def _out(text: str = "", **kwargs: Any) -> None:
    """Print human output with control characters escaped (names may be hostile)."""
    print(printable(text), **kwargs)


def open_store(settings: config.Settings) -> Store:
    from notary.store import Store

    return Store(settings.database_url)


def cmd_init(args: argparse.Namespace) -> int:
    from notary.store import redact
    from notary.tsa.server import BuiltinTSA

    home = config.default_home()
    path = config.write_default(home)
    settings = config.load(home)
    open_store(settings).close()
    tsa = BuiltinTSA.open(home / "tsa")
    result = {
        "home": str(home),
        "config": str(path),
        "database": redact(settings.database_url),
        "builtin_tsa_ca": str(tsa.ca_path),
    }
    if args.json:
        print_json(result)
        return EXIT_OK
    _out(f"data directory  {home}")
    _out(f"config          {path}")
    _out(f"database        {redact(settings.database_url)}")
    _out(f"built-in TSA CA {tsa.ca_path}")
    _out("note: the built-in TSA is for trying notary out; configure independent TSAs")
    _out("      for evidence that must convince a third party (README, Configuration).")
    return EXIT_OK


def _progress(args: argparse.Namespace) -> Progress:
    from notary.hashing import Progress

    if args.json or args.quiet or not sys.stderr.isatty():
        return Progress.disabled()
    return Progress()


def cmd_attest(args: argparse.Namespace) -> int:
    from notary import attest as pipeline

    settings = load_settings()
    if args.workers is not None:
        if args.workers < 1:
            raise UsageError("--workers: must be at least 1")
        settings.workers = args.workers
    store = open_store(settings)
    if args.resume is not None:
        if args.paths or args.stream:
            raise UsageError("attest --resume: takes no PATH or --stream")
        summary = pipeline.resume(
            settings, store, args.resume, progress=_progress(args), anchor=args.anchor
        )
    else:
        summary = _attest_new(args, settings, store)
    return _report(args, summary)


def _attest_new(
    args: argparse.Namespace, settings: config.Settings, store: Store
) -> pipeline.RunSummary:
    from notary import attest as pipeline
    from notary.schedule import source_options

    if not args.stream:
        raise UsageError(
            "attest: --stream NAME is required", hint="e.g. --stream erp-logs"
        )
    period = args.period or periods.last_finished(_today())
    _check_period(period)
    paths = list(args.paths)
    stream = settings.stream(args.stream)
    if paths and stream is not None:
        raise UsageError(
            f"stream {args.stream}: is configured with source {stream.source}; a PATH "
            "would attest other files under its name",
            hint="attest it without PATH, or give another --stream name",
        )
    if not paths and stream is not None:
        paths = [periods.fill(stream.source, period)]
    if not paths:
        raise UsageError("attest: give at least one PATH (or configure the stream)")
    options = source_options(stream) if stream is not None else {}
    return pipeline.attest(
        settings,
        store,
        stream=args.stream,
        period=period,
        paths=paths,
        algorithm=args.algorithm,
        progress=_progress(args),
        anchor=args.anchor or bool(stream and stream.anchor),
        source_options=options,
    )


def _check_period(period: str) -> None:
    """Refuse a period that has not begun; warn about one that has not ended."""
    periods.parse(period)
    current = periods.of(_today())
    if period > current:
        raise UsageError(
            f"period {period}: has not begun (this is {current})",
            hint="a run attests a month that has begun; usually the previous one",
        )
    if period == current:
        sys.stderr.write(
            f"notary: warning: period {period} is the current month; files added "
            "later this month are not in this run\n"
        )


def _today() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC)


def _report(args: argparse.Namespace, summary: pipeline.RunSummary) -> int:
    run = summary.run
    code = EXIT_OK if run.state == COMPLETE else EXIT_OPERATIONAL
    if args.json:
        print_json(summary.to_json())
        return code
    _out(f"run {run.id}  stream {run.stream}  period {run.period}")
    unstable = len(summary.unstable)
    skipped = len(summary.skipped)
    _out(
        f"  items     {run.item_count - len(summary.errors)} hashed, "
        f"{len(summary.errors)} unreadable, {unstable} unstable, {skipped} skipped"
    )
    for error in summary.errors:
        _out(f"  ERROR     {error['path']}: {error['error']}")
    for name in summary.unstable:
        _out(f"  UNSTABLE  {name}: changed while it was read")
    for skip in summary.skipped:
        _out(f"  skipped   {skip['path']}: {skip['reason']}")
    if run.root is not None:
        _out(f"  root      {run.algorithm}:{run.root.hex()}")
    for token in summary.tokens:
        when = token.gen_time.isoformat()
        _out(f"  token     {token.tsa} serial {token.serial} at {when}")
    for failure in summary.timestamp_errors:
        _out(f"  TSA FAIL  {failure['tsa']}: {failure['error']}")
    if summary.anchor:
        anchor_state = summary.anchor.get("state")
        reason = summary.anchor.get("error")
        _out(f"  anchor    {anchor_state}" + (f": {reason}" if reason else ""))
        if anchor_state == "failed":
            _out(
                f"hint: anchor later: `notary attest --resume {run.id} --anchor`",
                file=sys.stderr,
            )
    state = run.state + (
        " (partial: some items could not be read)" if run.partial else ""
    )
    _out(f"state: {state}")
    if run.state != COMPLETE:
        _out(
            f"hint: finish it later with `notary attest --resume {run.id}`",
            file=sys.stderr,
        )
    return code


def _describe(run: Run) -> dict[str, Any]:
    from notary.attest import describe_run

    return describe_run(run)


def cmd_runs(args: argparse.Namespace) -> int:
    runs = open_store(load_settings()).list_runs(args.stream)
    if args.json:
        print_json([_describe(run) for run in runs])
        return EXIT_OK
    if not runs:
        _out(f"no runs of stream {args.stream}" if args.stream else "no runs yet")
        return EXIT_OK
    _out(f"{'RUN':>5}  {'STREAM':<20} {'PERIOD':<8} {'STATE':<19} {'ITEMS':>8}  ROOT")
    for run in runs:
        root = run.root.hex()[:16] if run.root else "-"
        _out(
            f"{run.id:>5}  {run.stream:<20} {run.period:<8} {run.state:<19} "
            f"{run.item_count:>8}  {root}"
        )
    return EXIT_OK


def cmd_show(args: argparse.Namespace) -> int:
    from notary import attest as pipeline

    store = open_store(load_settings())
    summary = pipeline.summarize(store, store.get_run(args.run))
    document = _describe(summary.run) | summary.to_json()
    if args.items:
        document["item_list"] = pipeline.item_list(store, args.run)
    if args.json:
        print_json(document)
        return EXIT_OK
    for key in ("run", "stream", "period", "state", "algorithm", "root", "items"):
        _out(f"{key:<10} {document[key]}")
    _out(f"{'partial':<10} {document['partial']}")
    _out(f"{'created':<10} {document['created']}")
    _out(f"{'sealed':<10} {document['sealed']}")
    if summary.run.previous_run_id:
        _out(f"{'previous':<10} run {summary.run.previous_run_id}")
    for token in summary.tokens:
        _out(f"{'token':<10} {token.tsa} serial {token.serial} at {token.gen_time}")
    for error in summary.errors:
        _out(f"{'error':<10} {error['path']}: {error['error']}")
    for item in document.get("item_list", []):
        _out(f"  {item['status']:<8} {item['size']:>12}  {item['path']}")
    return EXIT_OK


def _check_output(output: Path, force: bool) -> None:
    """Refuse to write a bundle anywhere but a new (or, with force, a regular) file."""
    if output.is_symlink() or (output.exists() and not output.is_file()):
        raise UsageError(f"export: {output} exists and is not a regular file")
    if output.exists() and not force:
        raise UsageError(
            f"export: {output} already exists", hint="choose another name or --force"
        )
    if not output.parent.is_dir():
        raise UsageError(f"export: folder {output.parent} does not exist")


def cmd_export(args: argparse.Namespace) -> int:
    from notary.export import export

    output = Path(args.output)
    _check_output(output, args.force)
    store = open_store(load_settings())
    export(store, args.run, output, args.item)
    if args.json:
        print_json({"run": args.run, "bundle": str(output)})
    else:
        _out(f"bundle of run {args.run} written to {output}")
    return EXIT_OK
