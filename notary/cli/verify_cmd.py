"""``notary verify``: check bundles (or evidence records) and evidence files offline."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from notary.cli._common import print_json, printable
from notary.errors import NotaryError, UsageError
from notary.verdict import Check, Verdict
from notary.verify import (
    NO_PATH_DETAIL,
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
  4  indeterminate (cannot decide, e.g. no --trust-root, or a timestamp that
     does not chain to the trust root you gave)

Human output escapes control and format characters of names and messages (\\xNN,
\\uNNNN). With --json, stdout carries exactly one JSON document, also when the bundle
cannot be read: {"verdict": null, "error": "...", "type": "...", "exit_code": 2,
"hint": ...}; the one-line message goes to stderr as usual.

Passing item checks are summarised in one line (counted per check); every item
check that failed, is undecided or carries a warning is listed on its own. --json
always lists every check.
"""

# The order item checks are counted in, whatever order they ran in.
ITEM_CHECKS = ("record", "content", "proof", "evidence record")
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
    try:
        report = _verify(args)
    except NotaryError as exc:
        if not args.json:
            raise
        _print_json_failure(exc)
        return exc.exit_code
    if args.json:
        print_json(report.to_json())
    else:
        # Every line goes through printable(): names and details come from bundles
        # and file names, and must not be able to rewrite the terminal.
        sys.stdout.write("".join(printable(line) + "\n" for line in render(report)))
    return report.verdict.exit_code


def _verify(args: argparse.Namespace) -> BundleReport | ChainReport:
    _check_arguments(args)
    trust_roots = load_trust_roots(args.trust_roots)
    if len(args.bundles) > 1:
        return verify_bundles(
            args.bundles, trust_roots=trust_roots, rpc_url=args.rpc_url
        )
    return verify_bundle(
        args.bundles[0],
        directory=args.directory,
        files=args.files,
        trust_roots=trust_roots,
        rpc_url=args.rpc_url,
    )


def _print_json_failure(exc: NotaryError) -> None:
    """Report an error as one stderr line and one JSON document without a verdict."""
    sys.stderr.write(f"notary: {printable(exc.message)}\n")
    if exc.hint:
        sys.stderr.write(f"hint: {printable(exc.hint)}\n")
    print_json(
        {
            "verdict": None,
            "error": exc.message,
            "type": type(exc).__name__,
            "exit_code": exc.exit_code,
            "hint": exc.hint,
        }
    )


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
    yield from _header(report)
    item_checks = [c for c in report.checks if c.name.startswith("item ")]
    for check in report.checks:
        if not check.name.startswith("item "):
            yield _line(check)
        elif check is item_checks[0]:
            yield from _item_lines(report, item_checks)


def _header(report: BundleReport) -> Iterator[str]:
    info = report.info
    if info.get("kind") == "evidence-record":
        yield (
            f"evidence record {report.bundle}: {info['algorithm']} root {info['root']}"
        )
        return
    where = f"stream {info.get('stream')}, period {info.get('period')}"
    if info.get("run_record_verified"):
        yield (
            f"bundle {report.bundle}: {where} (proven by the run record); "
            f"run id {info.get('run')} (manifest only)"
        )
    else:
        yield (
            f"bundle {report.bundle}: UNVERIFIED {where}, run {info.get('run')} (the "
            "run record check failed: these are the manifest's unproven claims)"
        )
    yield (
        f"  tree: {info.get('algorithm')} root {info.get('root')}, "
        f"{info.get('leaves')} leaves, {info.get('items')} item(s) in this bundle; "
        f"checked: {info.get('scope')}"
    )


def _item_lines(report: BundleReport, checks: list[Check]) -> Iterator[str]:
    """Yield one line of counts for the passing item checks, then every other one.

    The rule does not depend on the number of items, so the output reads the same for
    3 items and for 30,000.
    """
    if report.info.get("kind") == "evidence-record":
        yield from (_line(c) for c in checks)
        return
    yield _coverage_line(report.info.get("items") or 0, checks)
    clean = [c for c in checks if c.ok is True and not c.warning]
    counts = dict.fromkeys(ITEM_CHECKS, 0)
    for check in clean:
        short = check.name.removeprefix("item ")
        counts[short] = counts.get(short, 0) + 1
    counts = {name: k for name, k in counts.items() if k}
    if counts:
        passed = ", ".join(f"{name} {k}" for name, k in counts.items())
        yield f"  {'ok':<5} item checks passed: {passed}"
    yield from (_line(c) for c in checks if not (c.ok is True and not c.warning))


def _coverage_line(items: int, checks: list[Check]) -> str:
    """Say for how many items the content itself was checked (not only the proof)."""
    content = len({c.item for c in checks if c.name == "item content"})
    if content == 0:
        scope = "content not checked (no file given): record and proof only"
    elif content >= items:
        scope = f"content checked for all {items}"
    else:
        scope = (
            f"content checked for {content} of them; record and proof only for the "
            f"other {items - content}"
        )
    return f"  items: {items} in this bundle; {scope}"


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
            c for c in _all_checks(report) if c.ok is None and not is_advisory(c)
        ]
        text += f"; undecided: {', '.join(dict.fromkeys(c.name for c in undecided))}"
        unproven = [c.item for c in undecided if c.item is not None]
        if unproven:
            text += f"; not proven: {', '.join(dict.fromkeys(unproven))}"
        if any(c.facts.get("no_path") for c in undecided):
            text += f"; {NO_PATH_DETAIL}"
    return text


def _all_checks(report: BundleReport | ChainReport) -> list[Check]:
    if isinstance(report, ChainReport):
        return [c for r in report.bundles for c in r.checks] + report.checks
    return report.checks
