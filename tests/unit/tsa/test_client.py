"""The TSA client against an in-process transport (httpx.MockTransport).

The mock answers with the built-in TSA, or with scripted failures, so every rule of the
client (headers, status, content type, size cap, retries, verification) is checked
without a socket. Real HTTP servers are in tests/integration/test_tsa_http.py.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from asn1crypto import tsp

from notary.config import TSAConfig
from notary.errors import (
    BuiltinTSAError,
    ConfigError,
    DigestLengthError,
    ImprintMismatchError,
    NonceMismatchError,
    TokenFormatError,
    TokenIndeterminateError,
    TSAConnectionError,
    TSAContentTypeError,
    TSAEmptyResponseError,
    TSAHTTPStatusError,
    TSARedirectError,
    TSAResponseTooLargeError,
    TSAStatusError,
    UnsupportedAlgorithmError,
)
from notary.tsa import client as tsa_client
from notary.tsa.client import (
    IssuedToken,
    RetryPolicy,
    collect_tokens,
    make_request,
    new_nonce,
    request_token,
)
from notary.tsa.server import BuiltinTSA
from notary.verdict import Verdict

URL = "http://127.0.0.1:9/tsr"
DIGEST = hashlib.sha256(b"root of the tree").digest()
FAST = RetryPolicy(backoff=0.001, max_delay=0.01)
REPLY = {"Content-Type": "application/timestamp-reply"}

Script = Callable[[httpx.Request], httpx.Response]


@dataclass
class MockTSA:
    """A scripted TSA: ``script`` answers successive requests, then the real TSA."""

    tsa: BuiltinTSA
    script: list[Script] = field(default_factory=list)
    requests: list[httpx.Request] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.script:
            return self.script.pop(0)(request)
        return self.grant(request)

    def grant(self, request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200, headers=REPLY, content=self.tsa.respond(request.content)
        )

    def client(self) -> httpx.Client:
        return httpx.Client(transport=httpx.MockTransport(self))


@pytest.fixture
def builtin(home: Path) -> BuiltinTSA:
    return BuiltinTSA.open(home / "tsa")


@pytest.fixture
def mock(builtin: BuiltinTSA) -> MockTSA:
    return MockTSA(builtin)


@pytest.fixture
def http_client(mock: MockTSA) -> Iterator[httpx.Client]:
    with mock.client() as client:
        yield client


def remote(**overrides: object) -> TSAConfig:
    settings: dict[str, object] = {
        "name": "remote",
        "url": URL,
        "trust_roots": ["tsa/ca.pem"],
        "retries": 3,
    }
    settings.update(overrides)
    return TSAConfig(**settings)  # type: ignore[arg-type]


def ask(home: Path, client: httpx.Client, tsa: TSAConfig | None = None) -> IssuedToken:
    tsa = tsa or remote()
    return request_token(tsa, DIGEST, "sha256", home=home, client=client, policy=FAST)


def answer(
    status: int, headers: dict[str, str] | None = None, body: bytes = b""
) -> Script:
    """Return a scripted reply that ignores the request."""
    return lambda request: httpx.Response(status, headers=headers or {}, content=body)


# --- requests ------------------------------------------------------------------------


def test_make_request_sets_imprint_nonce_and_cert_req() -> None:
    digest = hashlib.sha512(b"x").digest()

    request = tsp.TimeStampReq.load(make_request(digest, "sha512", 12345))

    assert request["message_imprint"]["hash_algorithm"]["algorithm"].native == "sha512"
    assert request["message_imprint"]["hashed_message"].native == digest
    assert request["nonce"].native == 12345
    assert request["cert_req"].native is True


def test_new_nonce_is_positive_and_below_2_63() -> None:
    nonces = {new_nonce() for _ in range(200)}

    assert len(nonces) == 200
    assert all(0 < n < 2**63 for n in nonces)


@pytest.mark.parametrize("algorithm", ["sha1", "md5", "sha3-256", "SHA256"])
def test_request_token_refused_algorithm_sends_nothing(
    home: Path, mock: MockTSA, http_client: httpx.Client, algorithm: str
) -> None:
    with pytest.raises(UnsupportedAlgorithmError, match="hash algorithm refused"):
        request_token(remote(), b"\x00" * 20, algorithm, home=home, client=http_client)

    assert mock.requests == []


@pytest.mark.parametrize(
    ("algorithm", "size"), [("sha256", 31), ("sha384", 32), ("sha512", 0)]
)
def test_request_token_digest_of_wrong_length_sends_nothing(
    home: Path, mock: MockTSA, http_client: httpx.Client, algorithm: str, size: int
) -> None:
    with pytest.raises(DigestLengthError, match=rf"expected \d+ bytes, got {size}"):
        request_token(
            remote(), b"\x01" * size, algorithm, home=home, client=http_client
        )

    assert mock.requests == []


# --- a good exchange -----------------------------------------------------------------


def test_request_token_http_returns_verified_token(
    home: Path, mock: MockTSA, http_client: httpx.Client, builtin: BuiltinTSA
) -> None:
    issued = ask(home, http_client)

    assert issued.tsa == "remote"
    assert issued.url == URL
    assert issued.report.verdict is Verdict.VALID
    assert issued.info.imprint == DIGEST
    assert builtin.ca_certificate in issued.certificates
    assert builtin.certificate in issued.certificates
    assert issued.serial_hex == format(issued.info.serial, "x")
    sent = mock.requests[0]
    assert sent.method == "POST"
    assert sent.headers["content-type"] == "application/timestamp-query"
    assert tsp.TimeStampReq.load(sent.content)["nonce"].native == issued.info.nonce


def test_request_token_reply_type_with_parameters_accepted(
    home: Path, mock: MockTSA, http_client: httpx.Client
) -> None:
    mock.script.append(
        lambda r: httpx.Response(
            200,
            headers={"Content-Type": "Application/Timestamp-Reply; charset=binary"},
            content=mock.tsa.respond(r.content),
        )
    )

    assert ask(home, http_client).report.verdict is Verdict.VALID


@pytest.mark.parametrize("algorithm", ["sha256", "sha384", "sha512"])
def test_request_token_builtin_needs_no_http(home: Path, algorithm: str) -> None:
    digest = hashlib.new(algorithm, b"root").digest()
    tsa = TSAConfig(name="builtin", url="builtin")

    issued = request_token(tsa, digest, algorithm, home=home)

    assert issued.url == "builtin"
    assert issued.info.hash_algorithm == algorithm
    assert issued.report.verdict is Verdict.VALID
    assert (home / "tsa" / "ca.pem").is_file()
    assert "BEGIN CERTIFICATE" in issued.certificates_pem()


def test_request_token_builtin_configured_root_not_duplicated(home: Path) -> None:
    tsa = TSAConfig(name="builtin", url="builtin", trust_roots=["tsa/ca.pem"])
    BuiltinTSA.open(home / "tsa")

    issued = request_token(tsa, DIGEST, "sha256", home=home)

    assert len(issued.certificates) == 2


def test_request_token_url_credentials_not_in_result(
    home: Path, http_client: httpx.Client
) -> None:
    tsa = remote(url="http://user:secret@127.0.0.1:9/tsr")

    issued = ask(home, http_client, tsa)

    assert issued.url == URL


# --- authentication ------------------------------------------------------------------


def test_request_token_auth_env_sends_basic_auth(
    home: Path,
    mock: MockTSA,
    http_client: httpx.Client,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("TSA_AUTH", "alice:s3cret:with-colon")
    caplog.set_level("DEBUG")

    ask(home, http_client, remote(auth_env="TSA_AUTH"))

    expected = base64.b64encode(b"alice:s3cret:with-colon").decode()
    assert mock.requests[0].headers["authorization"] == f"Basic {expected}"
    assert "s3cret" not in caplog.text


def test_request_token_header_env_sends_header(
    home: Path,
    mock: MockTSA,
    http_client: httpx.Client,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TSA_HEADER", "X-Api-Key:  k-123 ")

    ask(home, http_client, remote(header_env="TSA_HEADER"))

    assert mock.requests[0].headers["x-api-key"] == "k-123"
    assert mock.requests[0].headers["content-type"] == "application/timestamp-query"


@pytest.mark.parametrize(
    ("overrides", "environment", "message"),
    [
        ({"auth_env": "TSA_AUTH"}, {}, "TSA_AUTH is not set"),
        ({"auth_env": "TSA_AUTH"}, {"TSA_AUTH": "no-colon"}, "must hold user:password"),
        ({"header_env": "TSA_H"}, {"TSA_H": "Content-Type: x"}, "Name: value"),
        ({"header_env": "TSA_H"}, {"TSA_H": "novalue"}, "Name: value"),
        ({"trust_roots": []}, {}, "no trust_roots configured"),
        ({"trust_roots": ["missing.pem"]}, {}, "trust_roots entry 'missing.pem'"),
        ({"untrusted": ["missing.pem"]}, {}, "untrusted entry 'missing.pem'"),
        ({"url": "ftp://127.0.0.1/tsr"}, {}, "must be http"),
    ],
    ids=[
        "auth-unset",
        "auth-no-colon",
        "header-reserved",
        "header-no-colon",
        "no-roots",
        "roots-missing",
        "untrusted-missing",
        "scheme",
    ],
)
def test_request_token_unusable_configuration_raises_config_error(
    home: Path,
    mock: MockTSA,
    http_client: httpx.Client,
    monkeypatch: pytest.MonkeyPatch,
    overrides: dict[str, object],
    environment: dict[str, str],
    message: str,
) -> None:
    for name, value in environment.items():
        monkeypatch.setenv(name, value)

    with pytest.raises(ConfigError, match=message):
        ask(home, http_client, remote(**overrides))

    assert mock.requests == []


# --- transport failures --------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "error", "message"),
    [
        (
            answer(401, {"Content-Type": "application/json"}, b"{}"),
            TSAHTTPStatusError,
            "got 401",
        ),
        (
            answer(400, {"Content-Type": "text/plain"}, b"bad"),
            TSAHTTPStatusError,
            "got 400",
        ),
        (
            answer(302, {"Location": "http://127.0.0.1:9/x"}),
            TSARedirectError,
            "got 302",
        ),
        (
            answer(200, {"Content-Type": "text/html"}, b"<html>"),
            TSAContentTypeError,
            "text/html",
        ),
        (answer(200, {}, b"\x30\x00"), TSAContentTypeError, "got 'none'"),
        (answer(200, REPLY, b""), TSAEmptyResponseError, "got 0 bytes"),
        (answer(200, REPLY, b"garbage"), TokenFormatError, "not a TimeStampResp"),
    ],
    ids=["401", "400", "302", "html", "no-type", "empty", "garbage"],
)
def test_request_token_bad_reply_raises_without_retry(
    home: Path,
    mock: MockTSA,
    http_client: httpx.Client,
    reply: Script,
    error: type[Exception],
    message: str,
) -> None:
    mock.script.append(reply)

    with pytest.raises(error, match=message) as caught:
        ask(home, http_client)

    assert len(mock.requests) == 1
    assert caught.value.facts["tsa"] == "remote"  # type: ignore[attr-defined]
    assert caught.value.facts["url"] == URL  # type: ignore[attr-defined]


def test_request_token_declared_length_over_cap_raises_before_reading(
    home: Path, mock: MockTSA, http_client: httpx.Client
) -> None:
    mock.script.append(answer(200, {**REPLY, "Content-Length": "5000000"}, b"\x30"))

    with pytest.raises(TSAResponseTooLargeError, match="got 5000000"):
        ask(home, http_client)


def test_request_token_streamed_body_over_cap_stops_reading(
    home: Path, mock: MockTSA, http_client: httpx.Client
) -> None:
    produced: list[int] = []

    def chunks() -> Iterator[bytes]:
        for _ in range(80):  # 5 MiB if read to the end
            produced.append(1)
            yield b"\x00" * 65536

    mock.script.append(lambda r: httpx.Response(200, headers=REPLY, content=chunks()))

    with pytest.raises(TSAResponseTooLargeError, match="expected at most 1048576"):
        ask(home, http_client)

    assert len(produced) <= 17


def test_request_token_503_then_success_retries_and_logs(
    home: Path,
    mock: MockTSA,
    http_client: httpx.Client,
    caplog: pytest.LogCaptureFixture,
) -> None:
    mock.script += [answer(503, {"Retry-After": "0"}), answer(502)]
    caplog.set_level("WARNING", logger="notary.tsa.client")

    issued = ask(home, http_client)

    assert issued.report.verdict is Verdict.VALID
    assert len(mock.requests) == 3
    retries = [r.getMessage() for r in caplog.records if "retrying" in r.getMessage()]
    assert [m.split(" failed")[0] for m in retries] == [
        "tsa remote: attempt 1 of 3",
        "tsa remote: attempt 2 of 3",
    ]


def test_request_token_5xx_every_attempt_raises_last_status(
    home: Path, mock: MockTSA, http_client: httpx.Client
) -> None:
    mock.script += [answer(500), answer(503), answer(504)]

    with pytest.raises(TSAHTTPStatusError, match="got 504") as caught:
        ask(home, http_client)

    assert caught.value.facts["attempt"] == 3  # type: ignore[attr-defined]
    assert caught.value.facts["status"] == 504  # type: ignore[attr-defined]


def test_request_token_retries_zero_still_tries_once(
    home: Path, mock: MockTSA, http_client: httpx.Client
) -> None:
    mock.script.append(answer(503))

    with pytest.raises(TSAHTTPStatusError, match="got 503"):
        ask(home, http_client, remote(retries=0))

    assert len(mock.requests) == 1


@pytest.mark.parametrize(
    ("exception", "reason"),
    [
        (httpx.ConnectError("refused"), "network"),
        (httpx.ReadTimeout("slow"), "timeout"),
    ],
)
def test_request_token_connection_failures_retry_then_raise(
    home: Path,
    mock: MockTSA,
    http_client: httpx.Client,
    exception: Exception,
    reason: str,
) -> None:
    def fail(request: httpx.Request) -> httpx.Response:
        raise exception

    mock.script += [fail, fail]

    with pytest.raises(TSAConnectionError, match="attempt 2") as caught:
        ask(home, http_client, remote(retries=2))

    assert caught.value.facts["reason"] == reason  # type: ignore[attr-defined]
    assert len(mock.requests) == 2


def test_request_token_connection_failure_then_success(
    home: Path, mock: MockTSA, http_client: httpx.Client
) -> None:
    def fail(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused")

    mock.script.append(fail)

    assert ask(home, http_client).report.verdict is Verdict.VALID


@pytest.mark.parametrize(
    ("retry_after", "attempt", "expected"),
    [
        ("2", 1, 2.0),
        ("120", 1, 30.0),
        (None, 1, 1.0),
        (None, 3, 4.0),
        (None, 10, 30.0),
        ("soon", 2, 2.0),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 1, 0.0),
    ],
)
def test_delay_honours_retry_after_and_caps(
    retry_after: str | None, attempt: int, expected: float
) -> None:
    error = TSAHTTPStatusError("x", status=503, retry_after=retry_after)

    assert tsa_client._delay(error, attempt, RetryPolicy()) == expected


# --- verification --------------------------------------------------------------------


def test_request_token_replayed_token_raises_nonce_mismatch(
    home: Path, mock: MockTSA, http_client: httpx.Client
) -> None:
    old = mock.tsa.respond(make_request(DIGEST, "sha256", 1))
    mock.script.append(answer(200, REPLY, old))

    with pytest.raises(NonceMismatchError, match="nonce") as caught:
        ask(home, http_client)

    assert caught.value.facts["tsa"] == "remote"  # type: ignore[attr-defined]


def test_request_token_other_imprint_raises_imprint_mismatch(
    home: Path, mock: MockTSA, http_client: httpx.Client
) -> None:
    def other_digest(request: httpx.Request) -> httpx.Response:
        nonce = tsp.TimeStampReq.load(request.content)["nonce"].native
        forged = make_request(hashlib.sha256(b"other").digest(), "sha256", nonce)
        return httpx.Response(200, headers=REPLY, content=mock.tsa.respond(forged))

    mock.script.append(other_digest)

    with pytest.raises(ImprintMismatchError, match="imprint"):
        ask(home, http_client)


def test_request_token_rejection_raises_status_error(
    home: Path, mock: MockTSA, http_client: httpx.Client
) -> None:
    mock.script.append(answer(200, REPLY, mock.tsa.respond(b"garbage")))

    with pytest.raises(TSAStatusError, match="rejection"):
        ask(home, http_client)


def test_request_token_foreign_trust_root_is_indeterminate(
    home: Path, tmp_path: Path, http_client: httpx.Client
) -> None:
    other = BuiltinTSA.open(tmp_path / "other")

    with pytest.raises(TokenIndeterminateError, match="cannot decide"):
        ask(home, http_client, remote(trust_roots=[str(other.ca_path)]))


# --- several TSAs --------------------------------------------------------------------


def test_collect_tokens_reports_each_tsa_on_its_own(
    home: Path, mock: MockTSA, http_client: httpx.Client
) -> None:
    mock.script.append(answer(401, {"Content-Type": "application/json"}, b"{}"))
    tsas = [remote(name="bad"), remote(name="good"), TSAConfig("builtin", "builtin")]

    results = collect_tokens(
        tsas, DIGEST, "sha256", home=home, client=http_client, policy=FAST
    )

    assert isinstance(results[0], TSAHTTPStatusError)
    assert results[0].facts["tsa"] == "bad"
    assert isinstance(results[1], IssuedToken) and results[1].tsa == "good"
    assert isinstance(results[2], IssuedToken) and results[2].tsa == "builtin"


def test_collect_tokens_configuration_error_raises_before_asking(
    home: Path, mock: MockTSA, http_client: httpx.Client
) -> None:
    tsas = [remote(name="good"), remote(name="broken", trust_roots=[])]

    with pytest.raises(ConfigError, match="tsa broken"):
        collect_tokens(tsas, DIGEST, "sha256", home=home, client=http_client)

    assert mock.requests == []


def test_collect_tokens_bad_digest_raises(home: Path) -> None:
    with pytest.raises(DigestLengthError, match="wrong length"):
        collect_tokens([TSAConfig("builtin", "builtin")], b"x", "sha256", home=home)


def test_collect_tokens_broken_builtin_is_its_own_result(
    home: Path, mock: MockTSA, http_client: httpx.Client
) -> None:
    (home / "tsa" / "tsa.pem").unlink()
    tsas = [TSAConfig("builtin", "builtin"), remote(name="good")]

    results = collect_tokens(
        tsas, DIGEST, "sha256", home=home, client=http_client, policy=FAST
    )

    assert isinstance(results[0], BuiltinTSAError)
    assert results[0].facts["tsa"] == "builtin"
    assert isinstance(results[1], IssuedToken)


def test_request_token_raw_decoding_error_becomes_token_format_error(
    home: Path, http_client: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise ValueError("deep parser slip")

    monkeypatch.setattr(tsa_client, "verify_token", broken)

    with pytest.raises(TokenFormatError, match="does not decode") as caught:
        ask(home, http_client)

    assert caught.value.facts["tsa"] == "remote"  # type: ignore[attr-defined]
