"""``notary tsa check``: verify one RFC 3161 token offline, as an auditor would."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from cryptography import x509

from notary.cli._common import print_json
from notary.errors import TokenFormatError, UsageError
from notary.tsa.token import load_certificates
from notary.tsa.verify import TokenReport, verify_token

DESCRIPTION = """\
Verify an RFC 3161 time-stamp token against data or a digest, offline.

TOKEN is a TimeStampResp (.tsr) or a bare TimeStampToken, DER or PEM. Every check
is printed, then the verdict. Certificates are judged at the token's genTime, so a
token stays valid after its TSA certificate expires. Nothing is fetched from the
network: supply the TSA certificate with --untrusted when the token lacks it.
"""

EPILOG = """\
exit codes:
  0  valid
  1  invalid: a check failed; also a TSA rejection (status other than granted),
     which carries no token and proves nothing
  2  usage error: bad arguments, unreadable file, not a token or certificate
  4  indeterminate: cannot decide (no trust root, signer certificate not
     available, no path to a trust root, unknown algorithm)
"""

_MARKS = {True: "ok  ", False: "FAIL", None: "??  "}


def register(commands: Any, groups: dict[str, Any]) -> None:
    """Add ``tsa check`` to the ``tsa`` command group."""
    parser = groups["tsa"].add_parser(
        "check",
        help="verify an RFC 3161 token offline",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("token", metavar="TOKEN", help="TimeStampResp or token file")
    subject = parser.add_mutually_exclusive_group(required=True)
    subject.add_argument("--data", metavar="FILE", help="the file that was stamped")
    subject.add_argument("--digest", metavar="HEX", help="the digest that was stamped")
    parser.add_argument(
        "--hash-algorithm",
        metavar="ALG",
        help="require this imprint algorithm (sha256, sha384, sha512, ...)",
    )
    parser.add_argument(
        "--trust-root",
        metavar="PEM",
        action="append",
        default=[],
        help="trusted CA or pinned TSA certificate file (repeatable)",
    )
    parser.add_argument(
        "--untrusted",
        metavar="PEM",
        action="append",
        default=[],
        help="extra TSA or intermediate certificate file (repeatable)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.set_defaults(handler=check)


def check(args: argparse.Namespace) -> int:
    """Verify the token; print the report; return the verdict's exit code."""
    token = _read(args.token)
    data = _read(args.data) if args.data else None
    digest = _parse_digest(args.digest) if args.digest else None
    roots, untrusted = _certificates(args.trust_root), _certificates(args.untrusted)
    if digest is not None and len(digest) not in DIGEST_SIZES:
        raise UsageError(
            f"--digest: {len(digest)} bytes is no digest length notary knows "
            f"(expected one of {sorted(DIGEST_SIZES)})",
        )
    try:
        report = verify_token(
            token,
            digest=digest,
            data=data,
            hash_algorithm=args.hash_algorithm,
            trust_roots=roots,
            untrusted=untrusted,
        )
    except TokenFormatError as exc:
        first_line = exc.message.splitlines()[0] if exc.message else "unreadable"
        raise UsageError(
            f"{args.token}: not an RFC 3161 response or token ({first_line})",
            hint="a .tsq file is a request; check the .tsr the TSA answered",
        ) from exc
    if args.json:
        print_json(report.to_json())
    else:
        _print_human(report)
    return report.verdict.exit_code


def _print_human(report: TokenReport) -> None:
    info = report.info
    if info is not None:
        print(
            f"token: serial {info.serial_hex}, genTime {info.gen_time_raw}, "
            f"policy {info.policy}, tsa {info.signer_subject or info.tsa_name or '?'}"
        )
    for item in report.checks:
        mark = "warn" if item.warning else _MARKS[item.ok]
        print(f"{mark} {item.name}: {item.detail}")
    print(f"verdict: {report.verdict}")


# MD5, SHA-1, SHA-224, SHA-256, SHA-384, SHA-512 (old tokens may use the weak ones).
DIGEST_SIZES = frozenset({16, 20, 28, 32, 48, 64})


def _read(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise UsageError(f"{path}: cannot read ({exc.strerror})") from exc


def _parse_digest(text: str) -> bytes:
    try:
        return bytes.fromhex(text)
    except ValueError as exc:
        raise UsageError(f"--digest: not hexadecimal (got {text!r})") from exc


def _certificates(paths: list[str]) -> list[x509.Certificate]:
    certificates: list[x509.Certificate] = []
    for path in paths:
        try:
            certificates += load_certificates(path)
        except TokenFormatError as exc:
            raise UsageError(exc.message) from exc
    return certificates
