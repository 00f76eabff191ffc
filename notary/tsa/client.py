"""Ask time-stamping authorities for RFC 3161 tokens over a digest.

A TSA is reached over HTTP (RFC 3161 §3.4, httpx) or, for ``url = "builtin"``, in
process through the built-in TSA of the data directory. Every response is verified in
full (`notary.tsa.verify.verify_token`) before it is returned; only a ``valid`` verdict
yields a token. Nothing is stored here: the caller keeps ``IssuedToken.response``.

HTTP rules: POST ``application/timestamp-query``; accept only status 200 with
``application/timestamp-reply`` and a non-empty body under a size cap, read while
streaming; never follow redirects; retry with backoff only on 5xx, timeouts and
connection failures (``Retry-After`` honoured, capped); 4xx fails at once. Credentials
come from the environment variables a TSA's configuration names and are never logged.
"""

from __future__ import annotations

import email.utils
import logging
import os
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import rfc3161ng
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from notary.config import TSAConfig
from notary.errors import (
    ConfigError,
    DigestLengthError,
    TimestampError,
    TokenError,
    TokenFormatError,
    TokenIndeterminateError,
    TSAConnectionError,
    TSAContentTypeError,
    TSAEmptyResponseError,
    TSAHTTPStatusError,
    TSARedirectError,
    TSAResponseTooLargeError,
    TSATransportError,
    UnsupportedAlgorithmError,
)
from notary.tsa import token as tok
from notary.tsa.server import BuiltinTSA
from notary.tsa.token import TokenInfo
from notary.tsa.verify import TokenReport, verify_token
from notary.verdict import Verdict

logger = logging.getLogger(__name__)

# hashlib name -> digest length in bytes; SHA-1 and MD5 are never used for new requests.
DIGEST_SIZES = {"sha256": 32, "sha384": 48, "sha512": 64}
REQUEST_TYPE = "application/timestamp-query"
REPLY_TYPE = "application/timestamp-reply"
BUILTIN_DIRECTORY = "tsa"
# Headers a configured extra header may not replace: they carry the protocol itself.
RESERVED_HEADERS = frozenset({"content-type", "content-length", "host"})


@dataclass(frozen=True)
class RetryPolicy:
    """How hard the client tries and how much it reads from one TSA.

    ``backoff`` is the first delay in seconds, doubled after each failed attempt;
    ``max_delay`` caps it and any ``Retry-After``; ``max_response_bytes`` caps a body.
    """

    backoff: float = 1.0
    max_delay: float = 30.0
    max_response_bytes: int = 1024 * 1024


DEFAULT_POLICY = RetryPolicy()


@dataclass
class IssuedToken:
    """A verified token from one TSA.

    ``response`` is the TimeStampResp DER exactly as received; ``certificates`` is the
    chain to store beside it: the token's own, then the configured untrusted ones, then
    the trust roots, without duplicates.
    """

    tsa: str
    url: str
    response: bytes = field(repr=False)
    info: TokenInfo = field(repr=False)
    report: TokenReport = field(repr=False)
    certificates: list[x509.Certificate] = field(default_factory=list, repr=False)

    @property
    def serial_hex(self) -> str:
        return self.info.serial_hex

    def certificates_pem(self) -> str:
        """Return ``certificates`` as concatenated PEM text."""
        return "".join(
            cert.public_bytes(serialization.Encoding.PEM).decode("ascii")
            for cert in self.certificates
        )


@dataclass
class _Target:
    """One TSA with its configuration resolved: trust, credentials, display URL."""

    config: TSAConfig
    url: str
    trust_roots: list[x509.Certificate]
    untrusted: list[x509.Certificate]
    auth: httpx.BasicAuth | None = None
    headers: dict[str, str] = field(default_factory=dict)
    builtin: BuiltinTSA | None = None

    @property
    def name(self) -> str:
        return self.config.name


def request_token(
    tsa: TSAConfig,
    digest: bytes,
    algorithm: str,
    *,
    home: Path,
    client: httpx.Client | None = None,
    policy: RetryPolicy = DEFAULT_POLICY,
) -> IssuedToken:
    """Ask one TSA for a token over ``digest`` (raw bytes) and verify it.

    ``algorithm`` is a hashlib name (sha256, sha384, sha512). ``home`` is the data
    directory: relative trust-root paths resolve against it, and the built-in TSA lives
    in ``home/tsa``. ``client`` is used as given (its own settings, never closed here);
    without one a client is made for this call. ``tsa.retries`` counts attempts in
    all (at least one); ``policy`` sets the delays between them.

    Raises `DigestLengthError` or `UnsupportedAlgorithmError` before anything is sent,
    `ConfigError` for unusable configuration, a `TSATransportError` subclass for HTTP
    failures, `TSAStatusError` for a refusal, a `TokenError` subclass for an invalid
    token and `TokenIndeterminateError` when the token cannot be judged. Every such
    error names the TSA in its facts (``tsa``, ``url``).
    """
    check_digest(digest, algorithm)
    return _request(_prepare(tsa, home), digest, algorithm, client, policy)


def collect_tokens(
    tsas: Sequence[TSAConfig],
    digest: bytes,
    algorithm: str,
    *,
    home: Path,
    client: httpx.Client | None = None,
    policy: RetryPolicy = DEFAULT_POLICY,
) -> list[IssuedToken | TimestampError]:
    """Ask every TSA in turn; return, in the same order, each token or its error.

    One TSA's failure never stops the others. Raises only for the caller's mistakes,
    before any TSA is asked: a digest that does not fit ``algorithm``, a refused
    algorithm, or configuration that cannot work (`ConfigError`).
    """
    check_digest(digest, algorithm)
    targets = [_prepare_or_error(tsa, home) for tsa in tsas]
    results: list[IssuedToken | TimestampError] = []
    for tsa, target in zip(tsas, targets, strict=True):
        if isinstance(target, TimestampError):
            result: IssuedToken | TimestampError = target
        else:
            result = _request_or_error(target, digest, algorithm, client, policy)
        if isinstance(result, TimestampError):
            logger.warning("tsa %s: no token: %s", tsa.name, result.message)
        results.append(result)
    return results


def check_digest(digest: bytes, algorithm: str) -> None:
    """Refuse algorithms other than SHA-256/384/512 and digests of the wrong length."""
    if algorithm not in DIGEST_SIZES:
        raise UnsupportedAlgorithmError(
            "timestamp request: hash algorithm refused "
            f"(expected one of {', '.join(DIGEST_SIZES)}, got {algorithm!r})",
            expected=list(DIGEST_SIZES),
            actual=algorithm,
        )
    if len(digest) != DIGEST_SIZES[algorithm]:
        raise DigestLengthError(
            f"timestamp request: {algorithm} digest has the wrong length "
            f"(expected {DIGEST_SIZES[algorithm]} bytes, got {len(digest)})",
            expected=DIGEST_SIZES[algorithm],
            actual=len(digest),
        )


def new_nonce() -> int:
    """Return a random positive nonce below 2**63 (fits a signed 64-bit integer)."""
    # NOTE: 63 bits, not more: some TSAs store the nonce in a signed 64-bit integer.
    return 1 + secrets.randbelow(2**63 - 1)


def make_request(digest: bytes, algorithm: str, nonce: int) -> bytes:
    """Return a DER TimeStampReq with certReq true (checks the digest first)."""
    check_digest(digest, algorithm)
    request = rfc3161ng.make_timestamp_request(
        digest=digest, hashname=algorithm, include_tsa_certificate=True, nonce=nonce
    )
    return bytes(rfc3161ng.encode_timestamp_request(request))


# --- configuration --------------------------------------------------------------------


def check_config(tsas: Sequence[TSAConfig], home: Path) -> None:
    """Raise ConfigError when a TSA's trust roots, credentials or URL are unusable.

    Reads the certificate files and credential variables; sends nothing.
    """
    for tsa in tsas:
        _prepare(tsa, home)


def _prepare_or_error(tsa: TSAConfig, home: Path) -> _Target | TimestampError:
    """Prepare one TSA; a TimestampError (a broken built-in TSA) is its result."""
    try:
        return _prepare(tsa, home)
    except TimestampError as exc:
        _add_facts(exc, tsa=tsa.name, url=tsa.url)
        return exc


def _prepare(tsa: TSAConfig, home: Path) -> _Target:
    """Resolve one TSA's trust, credentials and URL; raise ConfigError if unusable."""
    builtin = BuiltinTSA.open(home / BUILTIN_DIRECTORY) if tsa.is_builtin else None
    roots = _load_certificates(tsa, tsa.trust_roots, home, "trust_roots")
    if builtin is not None:
        roots = _unique([*roots, builtin.ca_certificate])
    if not roots:
        raise ConfigError(
            f"tsa {tsa.name}: no trust_roots configured "
            "(expected the TSA's CA certificate, got none)",
            tsa=tsa.name,
            hint='add trust_roots = ["<CA certificate PEM>"] to its [[tsa]] entry',
        )
    untrusted = _load_certificates(tsa, tsa.untrusted, home, "untrusted")
    if builtin is not None:
        return _Target(tsa, tsa.url, roots, untrusted, builtin=builtin)
    return _Target(
        tsa,
        _display_url(tsa),
        roots,
        untrusted,
        auth=_basic_auth(tsa),
        headers=_extra_header(tsa),
    )


def _load_certificates(
    tsa: TSAConfig, paths: Sequence[str], home: Path, key: str
) -> list[x509.Certificate]:
    certificates: list[x509.Certificate] = []
    for entry in paths:
        path = _resolve(home, entry)
        try:
            certificates.extend(tok.load_certificates(path))
        except TokenError as exc:
            raise ConfigError(
                f"tsa {tsa.name}: {key} entry {entry!r} unusable ({exc.message})",
                tsa=tsa.name,
                path=str(path),
            ) from exc
    return certificates


def _resolve(home: Path, entry: str) -> Path:
    # Same rule as notary.config.resolve: relative paths are relative to home.
    candidate = Path(entry).expanduser()
    return candidate if candidate.is_absolute() else home / candidate


def _display_url(tsa: TSAConfig) -> str:
    """Return the URL without user information; refuse schemes other than http(s)."""
    try:
        url = httpx.URL(tsa.url)
    except httpx.InvalidURL as exc:
        raise ConfigError(f"tsa {tsa.name}: bad url ({exc})", tsa=tsa.name) from exc
    if url.scheme not in ("http", "https") or not url.host:
        raise ConfigError(
            f"tsa {tsa.name}: url must be http(s)://host/... or builtin "
            f"(got scheme {url.scheme!r})",
            tsa=tsa.name,
        )
    return str(url.copy_with(username=None, password=None))


def _secret(tsa: TSAConfig, variable: str) -> str:
    value = os.environ.get(variable)
    if not value:
        raise ConfigError(
            f"tsa {tsa.name}: environment variable {variable} is not set",
            tsa=tsa.name,
            variable=variable,
        )
    return value


def _basic_auth(tsa: TSAConfig) -> httpx.BasicAuth | None:
    if not tsa.auth_env:
        return None
    user, colon, password = _secret(tsa, tsa.auth_env).partition(":")
    if not colon:
        raise ConfigError(
            f"tsa {tsa.name}: {tsa.auth_env} must hold user:password "
            "(expected a colon, got none)",
            tsa=tsa.name,
            variable=tsa.auth_env,
        )
    return httpx.BasicAuth(user, password)


def _extra_header(tsa: TSAConfig) -> dict[str, str]:
    if not tsa.header_env:
        return {}
    name, colon, value = _secret(tsa, tsa.header_env).partition(":")
    name = name.strip()
    if not colon or not name or " " in name or name.lower() in RESERVED_HEADERS:
        raise ConfigError(
            f"tsa {tsa.name}: {tsa.header_env} must hold 'Name: value' with a name "
            f"other than {', '.join(sorted(RESERVED_HEADERS))}",
            tsa=tsa.name,
            variable=tsa.header_env,
        )
    return {name: value.strip()}


# --- asking and verifying -------------------------------------------------------------


def _request(
    target: _Target,
    digest: bytes,
    algorithm: str,
    client: httpx.Client | None,
    policy: RetryPolicy,
) -> IssuedToken:
    nonce = new_nonce()
    request = make_request(digest, algorithm, nonce)
    try:
        if target.builtin is not None:
            response = target.builtin.respond(request)
        else:
            response = _post(target, request, client, policy)
        return _verified(target, response, digest, algorithm, nonce)
    except TimestampError as exc:
        _add_facts(exc, tsa=target.name, url=target.url)
        raise


def _request_or_error(
    target: _Target,
    digest: bytes,
    algorithm: str,
    client: httpx.Client | None,
    policy: RetryPolicy,
) -> IssuedToken | TimestampError:
    try:
        return _request(target, digest, algorithm, client, policy)
    except TimestampError as exc:
        return exc


def _verified(
    target: _Target, response: bytes, digest: bytes, algorithm: str, nonce: int
) -> IssuedToken:
    try:
        report = verify_token(
            response,
            digest=digest,
            hash_algorithm=algorithm,
            nonce=nonce,
            require_nonce=True,
            trust_roots=target.trust_roots,
            untrusted=target.untrusted,
        )
    # NOTE: the response comes from the network; should a parser deep below ever
    # let a raw decoding error through, it is still this TSA's bad token, not a crash.
    except (ValueError, TypeError, AttributeError, KeyError, IndexError) as exc:
        raise TokenFormatError(
            f"tsa {target.name}: response does not decode ({type(exc).__name__}: {exc})"
        ) from exc
    if report.verdict is not Verdict.VALID or report.info is None:
        report.raise_for_verdict()
        raise TokenIndeterminateError(
            f"tsa {target.name}: token not judged valid (got {report.verdict})",
            reasons=report.reasons,
        )
    info = report.info
    embedded = [x509.load_der_x509_certificate(der) for der in info.certificates]
    logger.info(
        "tsa %s: token serial %s, genTime %s, imprint %s",
        target.name,
        info.serial_hex,
        info.gen_time_raw,
        info.imprint.hex(),
    )
    return IssuedToken(
        tsa=target.name,
        url=target.url,
        response=response,
        info=info,
        report=report,
        certificates=_unique([*embedded, *target.untrusted, *target.trust_roots]),
    )


def _add_facts(exc: TimestampError, **facts: str) -> None:
    """Name the TSA on an error raised below (verification knows no TSA names)."""
    for key, value in facts.items():
        if key not in exc.facts:
            exc.facts[key] = value
            setattr(exc, key, value)


def _unique(certificates: Sequence[x509.Certificate]) -> list[x509.Certificate]:
    seen: set[bytes] = set()
    result = []
    for cert in certificates:
        der = cert.public_bytes(serialization.Encoding.DER)
        if der not in seen:
            seen.add(der)
            result.append(cert)
    return result


# --- HTTP -----------------------------------------------------------------------------


def _post(
    target: _Target, request: bytes, client: httpx.Client | None, policy: RetryPolicy
) -> bytes:
    """POST the request, retrying transient failures; return the checked body."""
    own = client is None
    http = client or httpx.Client(follow_redirects=False)
    attempts = max(1, target.config.retries)
    try:
        for attempt in range(1, attempts + 1):
            try:
                return _attempt(target, request, http, policy, attempt)
            except (TSAConnectionError, TSAHTTPStatusError) as exc:
                if attempt == attempts or not _is_transient(exc):
                    raise
                delay = _delay(exc, attempt, policy)
                logger.warning(
                    "tsa %s: attempt %d of %d failed (%s); retrying in %.2f s",
                    target.name,
                    attempt,
                    attempts,
                    exc.message,
                    delay,
                )
                time.sleep(delay)
        raise AssertionError("unreachable: the last attempt returns or raises")
    finally:
        if own:
            http.close()


def _attempt(
    target: _Target,
    request: bytes,
    http: httpx.Client,
    policy: RetryPolicy,
    attempt: int,
) -> bytes:
    facts: dict[str, Any] = {"tsa": target.name, "url": target.url, "attempt": attempt}
    headers = {**target.headers, "Content-Type": REQUEST_TYPE}
    try:
        with http.stream(
            "POST",
            target.config.url,
            content=request,
            headers=headers,
            auth=target.auth,
            timeout=target.config.timeout,
            follow_redirects=False,
        ) as response:
            _check_response(target, response, policy, facts)
            body = _read_capped(target, response, policy, facts)
    except httpx.TimeoutException as exc:
        raise TSAConnectionError(
            f"tsa {target.name}: no answer from {target.url} within "
            f"{target.config.timeout} s ({type(exc).__name__}, attempt {attempt})",
            reason="timeout",
            **facts,
        ) from exc
    except httpx.NetworkError as exc:
        raise TSAConnectionError(
            f"tsa {target.name}: cannot reach {target.url} "
            f"({type(exc).__name__}: {exc}, attempt {attempt})",
            reason="network",
            **facts,
        ) from exc
    except httpx.HTTPError as exc:
        raise TSATransportError(
            f"tsa {target.name}: HTTP exchange with {target.url} failed "
            f"({type(exc).__name__}: {exc})",
            **facts,
        ) from exc
    tok.parse_status(body)  # a TimeStampResp at all? raises TokenFormatError if not
    return body


def _check_response(
    target: _Target,
    response: httpx.Response,
    policy: RetryPolicy,
    facts: dict[str, Any],
) -> None:
    """Refuse anything but 200 with application/timestamp-reply and a fitting length."""
    status = response.status_code
    content_type = response.headers.get("content-type", "")
    facts.update(status=status, content_type=content_type)
    if status != httpx.codes.OK:
        kind = TSARedirectError if 300 <= status < 400 else TSAHTTPStatusError
        raise kind(
            f"tsa {target.name}: HTTP status from {target.url} "
            f"(expected 200, got {status} {response.reason_phrase})",
            retry_after=response.headers.get("retry-after"),
            **facts,
        )
    if content_type.split(";")[0].strip().lower() != REPLY_TYPE:
        raise TSAContentTypeError(
            f"tsa {target.name}: content type from {target.url} "
            f"(expected {REPLY_TYPE}, got {content_type or 'none'!r})",
            **facts,
        )
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > policy.max_response_bytes:
        raise _too_large(target, policy, int(declared), facts)


def _read_capped(
    target: _Target,
    response: httpx.Response,
    policy: RetryPolicy,
    facts: dict[str, Any],
) -> bytes:
    """Read the body, stopping as soon as it exceeds the cap."""
    body = bytearray()
    for chunk in response.iter_bytes():
        body += chunk
        if len(body) > policy.max_response_bytes:
            raise _too_large(target, policy, len(body), facts)
    if not body:
        raise TSAEmptyResponseError(
            f"tsa {target.name}: empty body from {target.url} "
            "(expected a TimeStampResp, got 0 bytes)",
            **facts,
        )
    return bytes(body)


def _too_large(
    target: _Target, policy: RetryPolicy, size: int, facts: dict[str, Any]
) -> TSAResponseTooLargeError:
    return TSAResponseTooLargeError(
        f"tsa {target.name}: response from {target.url} too large "
        f"(expected at most {policy.max_response_bytes} bytes, got {size} or more)",
        limit=policy.max_response_bytes,
        size=size,
        **facts,
    )


def _is_transient(exc: TSAConnectionError | TSAHTTPStatusError) -> bool:
    if isinstance(exc, TSAConnectionError):
        return True
    return int(exc.facts.get("status", 0)) >= 500


def _delay(exc: TimestampError, attempt: int, policy: RetryPolicy) -> float:
    """Return seconds to wait: Retry-After when given, else exponential backoff."""
    retry_after = _parse_retry_after(exc.facts.get("retry_after"))
    if retry_after is None:
        retry_after = policy.backoff * 2 ** (attempt - 1)
    return max(0.0, min(retry_after, policy.max_delay))


def _parse_retry_after(value: object) -> float | None:
    """Read Retry-After as seconds or an HTTP date (RFC 9110 §10.2.3)."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        moment = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - datetime.now(UTC)).total_seconds()
