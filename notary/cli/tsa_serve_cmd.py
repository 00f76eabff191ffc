"""``notary tsa serve``: run the built-in TSA as an RFC 3161 HTTP service."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

from notary import config
from notary.errors import EXIT_OK, BuiltinTSAError
from notary.tsa.server import DEFAULT_PORT, BuiltinTSA, make_server

DESCRIPTION = """\
Serve the built-in time-stamping authority over HTTP (RFC 3161 section 3.4).

Clients POST a TimeStampReq with Content-Type application/timestamp-query and get a
TimeStampResp back. The CA and TSA certificate are created under DATA_DIR/tsa on first
use. Its tokens pass `openssl ts -verify -CAfile ca.pem` but prove nothing to a third
party: use independent TSAs for evidence. Stop with Ctrl-C or SIGTERM (exit 0).
"""


def register(commands: Any, groups: dict[str, Any]) -> None:
    """Add ``tsa serve`` to the ``tsa`` command group."""
    parser = groups["tsa"].add_parser(
        "serve",
        help="serve the built-in TSA over HTTP",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to bind (default: 127.0.0.1; the service has no authentication)",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        help=f"port to bind, 0 for any free one (default: {DEFAULT_PORT})",
    )
    parser.add_argument(
        "--home", metavar="DIR", help="data directory (default: NOTARY_HOME)"
    )
    parser.set_defaults(handler=cmd_serve)


def cmd_serve(args: argparse.Namespace) -> int:
    _log_tokens_by_default(args)
    home = Path(args.home).expanduser() if args.home else config.default_home()
    tsa = BuiltinTSA.open(home / "tsa")
    try:
        httpd = make_server(tsa, args.host, args.port)
    except OSError as exc:
        raise BuiltinTSAError(
            f"tsa serve: cannot listen on {args.host}:{args.port} ({exc.strerror})",
            host=args.host,
            port=args.port,
        ) from exc
    if args.host not in ("127.0.0.1", "::1", "localhost"):
        sys.stderr.write(
            f"notary: warning: the built-in TSA signs any request and has no "
            f"authentication; it is now reachable on {args.host}\n"
        )
    host, port = httpd.server_address[:2]
    print(f"CA certificate  {tsa.ca_path.absolute()}")
    print(f"listening on    http://{_url_host(str(host))}:{port}/")
    sys.stdout.flush()
    signal.signal(signal.SIGTERM, _interrupt)
    with httpd:
        try:
            httpd.serve_forever()
        except KeyboardInterrupt:
            sys.stderr.write("notary: tsa serve stopped\n")
    return EXIT_OK


def _interrupt(signum: int, frame: object) -> None:
    """Turn SIGTERM into the same clean stop as Ctrl-C."""
    raise KeyboardInterrupt


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _log_tokens_by_default(args: argparse.Namespace) -> None:
    """Log one line per token unless -q, -v or NOTARY_LOG_LEVEL choose a level."""
    chosen = getattr(args, "quiet", False) or getattr(args, "verbose", 0)
    if not chosen and not os.environ.get("NOTARY_LOG_LEVEL"):
        logging.getLogger("notary.tsa.server").setLevel(logging.INFO)
