"""The ``notary`` command line: a thin layer over the library modules.

Exit codes: 0 ok or valid, 1 verification failed (invalid), 2 usage error, 3 operational
error (TSA, RPC, database, I/O), 4 indeterminate. stdout carries results; stderr carries
logs, progress and diagnostics. Tracebacks appear only with ``-v``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence

from notary import __version__
from notary.cli._common import print_json, printable
from notary.errors import EXIT_OK, EXIT_OPERATIONAL, EXIT_USAGE, NotaryError

logger = logging.getLogger(__name__)

EPILOG = """\
exit codes:
  0  success; verification: valid
  1  verification: invalid (a check failed)
  2  usage error (bad arguments, bad input file, bad configuration)
  3  operational error (TSA, RPC, database, I/O)
  4  verification: indeterminate (cannot decide, e.g. no trust root)
130 interrupted (Ctrl-C); work done so far is kept
"""

# Each module defines register(commands, groups); groups maps a group name ("tsa",
# "schedule", "anchor") to the sub-parser collection of that command group.
COMMAND_MODULES = (
    "notary.cli.run_cmd",
    "notary.cli.verify_cmd",
    "notary.cli.tsa_check_cmd",
    "notary.cli.tsa_serve_cmd",
    "notary.cli.schedule_cmd",
    "notary.cli.anchor_cmd",
)
GROUPS = {
    "tsa": "time-stamping authority tools",
    "schedule": "periodic attestations",
    "anchor": "EVM blockchain anchors",
}


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors exit with code 2 and one line of hint."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        sys.stderr.write(f"notary: error: {message}\n")
        raise SystemExit(EXIT_USAGE)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="notary",
        description="Evidence notarization: hash, timestamp, export and verify proofs.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"notary {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="more logging; tracebacks"
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings")
    parser.add_argument(
        "--home",
        metavar="DIR",
        help="data directory (default: $NOTARY_HOME or the user's data directory)",
    )
    commands = parser.add_subparsers(
        dest="command", metavar="COMMAND", parser_class=_Parser
    )
    commands.required = True
    groups = {}
    for name, help_text in GROUPS.items():
        group = commands.add_parser(name, help=help_text, description=help_text)
        groups[name] = group.add_subparsers(dest="subcommand", metavar="SUBCOMMAND")
        groups[name].required = True
    for module_name in COMMAND_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue
        module.register(commands, groups)
    return parser


def configure_logging(verbose: int, quiet: bool) -> None:
    """Send the ``notary`` logger to stderr at the level flags or environment ask."""
    level_name = os.environ.get("NOTARY_LOG_LEVEL", "").upper()
    if verbose:
        level = logging.DEBUG if verbose > 1 else logging.INFO
    elif quiet:
        level = logging.WARNING
    elif level_name in logging.getLevelNamesMapping():
        level = logging.getLevelNamesMapping()[level_name]
    else:
        level = logging.WARNING
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("notary")
    root.handlers[:] = [handler]
    root.setLevel(level)


GLOBAL_FLAGS = frozenset({"-v", "-vv", "-vvv", "--verbose", "-q", "--quiet"})


def _global_flags_first(argv: Sequence[str]) -> list[str]:
    """Move -v/-q given after the command to the front, where argparse expects them."""
    words = list(argv)
    end = words.index("--") if "--" in words else len(words)
    flags = [word for word in words[:end] if word in GLOBAL_FLAGS]
    rest = [word for word in words[:end] if word not in GLOBAL_FLAGS]
    return flags + rest + words[end:]


def _report(args: argparse.Namespace, exc: NotaryError) -> None:
    """Print a NotaryError as one line (and a hint); as JSON too when --json."""
    if args.verbose:
        logger.exception("failed")
    sys.stderr.write(f"notary: {printable(exc.message)}\n")
    if exc.hint:
        sys.stderr.write(f"hint: {printable(exc.hint)}\n")
    if getattr(args, "json", False):
        print_json(
            {
                "error": exc.message,
                "type": type(exc).__name__,
                "exit_code": exc.exit_code,
                "hint": exc.hint,
            }
        )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code (also used as the process status).

    Exit 130 after Ctrl-C (work done so far is kept; `attest --resume` goes on).
    """
    parser = build_parser()
    args = parser.parse_args(
        _global_flags_first(sys.argv[1:] if argv is None else argv)
    )
    configure_logging(args.verbose, args.quiet)
    if args.home:
        os.environ["NOTARY_HOME"] = args.home
    try:
        code = args.handler(args)
    except NotaryError as exc:
        _report(args, exc)
        return exc.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("notary: interrupted\n")
        return 130
    except BrokenPipeError:
        # The reader of stdout went away (`notary runs | head`): not an error of ours.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK
    except Exception as exc:
        if args.verbose:
            raise
        message = printable(f"{type(exc).__name__}: {exc}")
        sys.stderr.write(f"notary: internal error: {message}\n")
        sys.stderr.write("hint: rerun with -v for the traceback\n")
        return EXIT_OPERATIONAL
    return int(code or 0)


def run() -> None:
    code = main()
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away after our last write; nothing is lost.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    sys.exit(code)
