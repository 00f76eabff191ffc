"""``notary verify``: check bundles (or evidence records) and evidence files offline."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from notary.cli._common import print_json
from notary.errors import UsageError
from notary.verdict import Check, Verdict
from notary.verify import (
    BundleReport,
    ChainReport,
    is_advisory,
    load_trust_roots,
    verify_bundle,
    verify_bundles,
)

DESCRIPTION = """\
Verify proof bundles offline: every item's metadata record, its proof to the tree's
root and the RFC 3161 timestamp over that root; with --dir or --file also the evidence
files themselves. Several bundles of one stream are verified each, then their chain of
runs (missing or broken periods are named). BUNDLE may also be an RFC 4998 evidence
record (ITEM.ers) checked against one --file. The database is never opened.

Without --trust-root the timestamp's certificate chain is checked only against the
certificates inside the bundle, and the verdict is indeterminate at best.
"""

EPILOG = """\
exit codes:
  0  valid
  1  invalid (a check failed; failing files are named)
  2  usage error (bad arguments, not a bundle, newer bundle format)
  3  operational error (I/O)
  4  indeterminate (cannot decide, e.g. no --trust-root)
"""

SUMMARY_ABOVE = 20
MARKS = {True: "ok", False: "FAIL", None: "??"}


def register(commands: Any, groups: dict[str, Any]) -> None:
    parser = commands.add_parser(
        "verify",
        help="verify bundles and evidence files offline",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "bundles", nargs="+", type=Path, metavar="BUNDLE", help="bundle zip/dir or .ers"
    )
    parser.add_argument(
        "--dir", type=Path, dest="directory", metavar="DIR", help="evidence directory"
    )
    parser.add_argument(
        "--file",
        action=_FileAction,
        dest="files",
        default=[],
        metavar="PATH",
        help="one evidence file (repeatable)",
    )
    parser.add_argument(
        "--as",
        action=_AsAction,
        dest="files",
        metavar="ITEM",
        help="the item the preceding --file is (its path in the bundle)",
    )
    parser.add_argument(
        "--trust-root",
        action="append",
        type=Path,
        default=[],
        dest="trust_roots",
        metavar="PEM",
        help="TSA root certificate you trust (repeatable)",
    )
    parser.add_argument(
        "--rpc", dest="rpc_url", metavar="URL", help="EVM RPC for anchors"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.set_defaults(handler=cmd_verify)


class _FileAction(argparse.Action):
    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        files = list(getattr(namespace, self.dest) or [])
        files.append((Path(values), None))
        setattr(namespace, self.dest, files)


class _AsAction(argparse.Action):
    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        files = list(getattr(namespace, self.dest) or [])
        if not files or files[-1][1] is not None:
            parser.error("--as ITEM must follow the --file PATH it names")
        files[-1] = (files[-1][0], str(values))
        setattr(namespace, self.dest, files)


def cmd_verify(args: argparse.Namespace) -> int:
    _check_arguments(args)
    trust_roots = load_trust_roots(args.trust_roots)
    report: BundleReport | ChainReport
    if len(args.bundles) > 1:
        report = verify_bundles(
            args.bundles, trust_roots=trust_roots, rpc_url=args.rpc_url
        )
    else:
        report = verify_bundle(
            args.bundles[0],
            directory=args.directory,
            files=args.files,
            trust_roots=trust_roots,
            rpc_url=args.rpc_url,
        )
    if args.json:
        print_json(report.to_json())
    else:
        sys.stdout.write("".join(line + "\n" for line in render(report)))
    return report.verdict.exit_code


def _check_arguments(args: argparse.Namespace) -> None:
    if args.directory is not None and args.files:
        raise UsageError("verify: give --dir or --file, not both")
    if len(args.bundles) > 1 and (args.directory is not None or args.files):
        raise UsageError(
            "verify: --dir and --file check one bundle; verify the chain of several "
            "bundles without them"
        )


# --- human output ---------------------------------------------------------------------


def render(report: BundleReport | ChainReport) -> Iterator[str]:
    """Yield the lines of the human report: warnings, checks, verdict, warnings."""
    yield from _warnings(report.warnings)
    if isinstance(report, ChainReport):
        for bundle in report.bundles:
            yield from _bundle_section(bundle)
            yield f"  bundle verdict: {bundle.verdict.value.upper()}"
            yield ""
        yield "chain of runs:"
        yield from (_line(c) for c in report.checks if c.name != "bundle")
    else:
        yield from _bundle_section(report)
    yield ""
    yield _verdict_line(report)
    yield from _warnings(report.warnings)


def _warnings(warnings: Sequence[str]) -> Iterator[str]:
    for warning in warnings:
        yield f"WARNING: {warning}"


def _bundle_section(report: BundleReport) -> Iterator[str]:
    """Yield the header and checks; item checks form one block where the first was."""
    yield _header(report)
    item_checks = [c for c in report.checks if c.name.startswith("item ")]
    for check in report.checks:
        if not check.name.startswith("item "):
            yield _line(check)
        elif check is item_checks[0]:
            yield from _item_lines(item_checks)


def _header(report: BundleReport) -> str:
    info = report.info
    if info.get("kind") == "evidence-record":
        return (
            f"evidence record {report.bundle}: {info['algorithm']} root {info['root']}"
        )
    return (
        f"bundle {report.bundle}: run {info.get('run')}, stream {info.get('stream')}, "
        f"period {info.get('period')}\n  tree: {info.get('algorithm')} root "
        f"{info.get('root')}, {info.get('leaves')} leaves, {info.get('items')} item(s) "
        f"in this bundle; checked: {info.get('scope')}"
    )


def _item_lines(checks: list[Check]) -> Iterator[str]:
    items = list(dict.fromkeys(c.item for c in checks))
    if len(items) <= SUMMARY_ABOVE:
        yield from (_line(c) for c in checks)
        return
    clean = [c for c in checks if c.ok is True and not c.warning]
    passing = {c.item for c in clean} - {c.item for c in checks if c not in clean}
    if passing:
        names = sorted({c.name.removeprefix("item ") for c in clean})
        yield f"  ok    {len(passing)} items: {', '.join(names)} ok"
    yield from (_line(c) for c in checks if c.item not in passing)


def _line(check: Check) -> str:
    mark = MARKS[check.ok]
    if check.ok is True and check.warning:
        mark = "ok!"
    # An advisory check that passed needs no label; one that did not says that it
    # does not decide the verdict.
    shown_advisory = is_advisory(check) and check.ok is not True
    name = check.name + (" (advisory, does not decide)" if shown_advisory else "")
    text = f"  {mark:<5} {name}: {check.detail}"
    return text + (f"  [{check.item}]" if check.item else "")


def _verdict_line(report: BundleReport | ChainReport) -> str:
    verdict = report.verdict
    text = f"verdict: {verdict.value.upper()}"
    failing = report.failing_items
    broken = []
    if isinstance(report, ChainReport):
        broken = [
            c.detail for c in report.checks if c.ok is False and c.name != "bundle"
        ]
    if failing or broken:
        text += f"; failing: {', '.join(failing)}" if failing else ""
        text += f"; chain: {'; '.join(broken)}" if broken else ""
    elif verdict is Verdict.INVALID:
        failed = [c.name for c in _all_checks(report) if c.ok is False]
        text += f"; failed: {', '.join(dict.fromkeys(failed))}"
    elif verdict is Verdict.VALID:
        advisory = [c.name for c in _all_checks(report) if c.ok is False]
        if advisory:
            text += f" (advisory checks failed: {', '.join(dict.fromkeys(advisory))})"
    elif verdict is Verdict.INDETERMINATE:
        undecided = [
            c.name for c in _all_checks(report) if c.ok is None and not is_advisory(c)
        ]
        text += f"; undecided: {', '.join(dict.fromkeys(undecided))}"
    return text


def _all_checks(report: BundleReport | ChainReport) -> list[Check]:
    if isinstance(report, ChainReport):
        return [c for r in report.bundles for c in r.checks] + report.checks
    return report.checks
