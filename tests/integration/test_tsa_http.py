"""The TSA client over real HTTP: stub TSAs and the built-in TSA's server on 127.0.0.1.

Every server here is started by the test on a free loopback port and stopped after it.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from notary.config import TSAConfig
from notary.errors import (
    NonceMismatchError,
    TSAConnectionError,
    TSAContentTypeError,
    TSAEmptyResponseError,
    TSAHTTPStatusError,
    TSARedirectError,
    TSAResponseTooLargeError,
)
from notary.tsa.client import IssuedToken, RetryPolicy, collect_tokens, request_token
from notary.tsa.server import BuiltinTSA, make_server
from notary.verdict import Verdict
from tests.tsa_http import StubReply, StubRequest, stub_server

DIGEST = hashlib.sha256(b"root of the tree").digest()
REPLY_TYPE = {"Content-Type": "application/timestamp-reply"}
FAST = RetryPolicy(backoff=0.01, max_delay=2.0)
START_TIMEOUT = 20.0


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep loopback requests direct even where the environment sets a proxy."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


@pytest.fixture
def builtin(home: Path) -> BuiltinTSA:
    return BuiltinTSA.open(home / "tsa")


def config(name: str, url: str, **extra: object) -> TSAConfig:
    settings: dict[str, object] = {"trust_roots": ["tsa/ca.pem"], "timeout": 5.0}
    settings.update(extra)
    return TSAConfig(name=name, url=url, **settings)  # type: ignore[arg-type]


def granted(tsa: BuiltinTSA, request: StubRequest) -> StubReply:
    return StubReply(200, REPLY_TYPE, tsa.respond(request.body))


def five_megabytes() -> Iterator[bytes]:
    for _ in range(80):
        yield b"\x30" * 65536


# case -> (reply factory, error type, message pattern)
BAD_REPLIES: dict[str, tuple[Callable[[], StubReply], type[Exception], str]] = {
    "401-json": (
        lambda: StubReply(401, {"Content-Type": "application/json"}, b'{"e":"auth"}'),
        TSAHTTPStatusError,
        "got 401",
    ),
    "200-html": (
        lambda: StubReply(200, {"Content-Type": "text/html"}, b"<html>down</html>"),
        TSAContentTypeError,
        "got 'text/html'",
    ),
    "200-empty": (lambda: StubReply(200, REPLY_TYPE), TSAEmptyResponseError, "0 bytes"),
    "400-text": (
        lambda: StubReply(400, {"Content-Type": "text/plain"}, b"bad request"),
        TSAHTTPStatusError,
        "got 400",
    ),
    "302": (
        lambda: StubReply(302, {"Location": "http://127.0.0.1:9/elsewhere"}),
        TSARedirectError,
        "got 302",
    ),
    "5mb-streamed": (
        lambda: StubReply(200, REPLY_TYPE, five_megabytes()),
        TSAResponseTooLargeError,
        "too large",
    ),
    "5mb-declared": (
        lambda: StubReply(200, REPLY_TYPE, b"\x30" * (5 * 1024 * 1024)),
        TSAResponseTooLargeError,
        "too large",
    ),
}


@pytest.mark.parametrize("case", list(BAD_REPLIES))
def test_request_token_bad_http_reply_raises_typed_error(
    home: Path, builtin: BuiltinTSA, case: str
) -> None:
    make_reply, error, message = BAD_REPLIES[case]

    tsa = config("stub", "http://127.0.0.1:9/")
    with (
        stub_server(lambda request: make_reply()) as stub,
        pytest.raises(error, match=message) as caught,
    ):
        tsa.url = stub.url
        request_token(tsa, DIGEST, "sha256", home=home, policy=FAST)

    assert len(stub.requests) == 1
    assert caught.value.facts["tsa"] == "stub"  # type: ignore[attr-defined]
    assert caught.value.facts["attempt"] == 1  # type: ignore[attr-defined]


def test_request_token_503_retry_after_waits_then_succeeds(
    home: Path, builtin: BuiltinTSA, caplog: pytest.LogCaptureFixture
) -> None:
    arrivals: list[float] = []

    def flaky(request: StubRequest) -> StubReply:
        arrivals.append(time.monotonic())
        if len(arrivals) == 1:
            return StubReply(503, {"Retry-After": "1", "Content-Type": "text/plain"})
        return granted(builtin, request)

    caplog.set_level("WARNING", logger="notary.tsa.client")

    with stub_server(flaky) as stub:
        issued = request_token(
            config("flaky", stub.url), DIGEST, "sha256", home=home, policy=FAST
        )

    assert issued.report.verdict is Verdict.VALID
    assert arrivals[1] - arrivals[0] >= 0.95
    assert "attempt 1 of 3" in caplog.text


def test_request_token_connection_refused_raises_after_retries(
    home: Path, builtin: BuiltinTSA
) -> None:
    with stub_server(lambda request: StubReply()) as stub:
        url = stub.url
    # the stub is closed now: its port refuses connections

    with pytest.raises(TSAConnectionError, match="attempt 2"):
        request_token(
            config("gone", url, retries=2), DIGEST, "sha256", home=home, policy=FAST
        )


def test_collect_tokens_bad_then_good_returns_error_and_token(
    home: Path, builtin: BuiltinTSA
) -> None:
    html = StubReply(200, {"Content-Type": "text/html"}, b"<html></html>")

    with (
        stub_server(lambda request: html) as bad,
        stub_server(lambda request: granted(builtin, request)) as good,
    ):
        results = collect_tokens(
            [config("bad", bad.url), config("good", good.url)],
            DIGEST,
            "sha256",
            home=home,
            policy=FAST,
        )

    assert isinstance(results[0], TSAContentTypeError)
    assert results[0].facts["tsa"] == "bad"
    assert isinstance(results[1], IssuedToken)
    assert results[1].tsa == "good" and results[1].url == good.url
    assert results[1].report.verdict is Verdict.VALID


def test_request_token_replayed_token_raises_nonce_mismatch(
    home: Path, builtin: BuiltinTSA
) -> None:
    first = request_token(TSAConfig("builtin", "builtin"), DIGEST, "sha256", home=home)

    with (
        stub_server(lambda request: StubReply(200, REPLY_TYPE, first.response)) as stub,
        pytest.raises(NonceMismatchError, match="nonce: differs"),
    ):
        request_token(config("replay", stub.url), DIGEST, "sha256", home=home)


def test_request_token_auth_env_sends_basic_auth(
    home: Path, builtin: BuiltinTSA, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = "Basic " + base64.b64encode(b"notary:pa55word").decode()

    def guarded(request: StubRequest) -> StubReply:
        if request.headers.get("authorization") != expected:
            return StubReply(401, {"WWW-Authenticate": 'Basic realm="tsa"'})
        return granted(builtin, request)

    monkeypatch.setenv("STUB_TSA_AUTH", "notary:pa55word")

    with stub_server(guarded) as stub:
        issued = request_token(
            config("auth", stub.url, auth_env="STUB_TSA_AUTH"),
            DIGEST,
            "sha256",
            home=home,
        )
        with pytest.raises(TSAHTTPStatusError, match="got 401"):
            request_token(config("noauth", stub.url), DIGEST, "sha256", home=home)

    assert issued.report.verdict is Verdict.VALID
    assert stub.requests[0].headers["content-type"] == "application/timestamp-query"


# --- the built-in TSA's own HTTP server ----------------------------------------------


@pytest.fixture
def builtin_url(builtin: BuiltinTSA) -> Iterator[str]:
    httpd = make_server(builtin, "127.0.0.1", 0)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def raw_exchange(
    url: str, method: str, headers: dict[str, str], body: bytes = b""
) -> tuple[int, str]:
    port = int(url.rstrip("/").rsplit(":", 1)[1])
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.putrequest(method, "/")
        for name, value in headers.items():
            connection.putheader(name, value)
        connection.endheaders(body or None)
        response = connection.getresponse()
        response.read()
        return response.status, response.getheader("Content-Type", "")
    finally:
        connection.close()


def test_builtin_server_post_returns_valid_token(home: Path, builtin_url: str) -> None:
    tsa = config("local", builtin_url)

    issued = request_token(tsa, DIGEST, "sha256", home=home)

    assert issued.report.verdict is Verdict.VALID


@pytest.mark.parametrize(
    ("method", "headers", "body", "status"),
    [
        ("GET", {}, b"", 405),
        ("PUT", {"Content-Type": "application/timestamp-query"}, b"x", 405),
        ("POST", {"Content-Type": "text/plain", "Content-Length": "1"}, b"x", 415),
        ("POST", {"Content-Type": "application/timestamp-query"}, b"", 411),
        (
            "POST",
            {"Content-Type": "application/timestamp-query", "Content-Length": "99999"},
            b"",
            413,
        ),
    ],
    ids=["get", "put", "wrong-type", "no-length", "oversized"],
)
def test_builtin_server_bad_request_answers_4xx(
    builtin_url: str, method: str, headers: dict[str, str], body: bytes, status: int
) -> None:
    answer = raw_exchange(builtin_url, method, headers, body)

    assert answer[0] == status
    assert answer[1].startswith("text/plain")


def test_builtin_server_garbage_query_answers_rejection(builtin_url: str) -> None:
    headers = {"Content-Type": "application/timestamp-query", "Content-Length": "3"}

    status, content_type = raw_exchange(builtin_url, "POST", headers, b"bad")

    assert (status, content_type) == (200, "application/timestamp-reply")


# --- `notary tsa serve` as a separate process ----------------------------------------


def _read_url(process: subprocess.Popen[str]) -> str:
    """Return the URL `notary tsa serve` prints once it listens."""
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line)
        lines.put("")  # end of output: the process exited

    threading.Thread(target=pump, daemon=True).start()
    seen = []
    deadline = time.monotonic() + START_TIMEOUT
    while (left := deadline - time.monotonic()) > 0:
        try:
            line = lines.get(timeout=left)
        except queue.Empty:
            break
        seen.append(line)
        if line.startswith("listening on"):
            return line.split()[-1]
        if not line:
            break
    raise AssertionError(f"tsa serve did not start: {seen!r}")


@pytest.mark.parametrize(
    "stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "term"]
)
def test_tsa_serve_command_issues_valid_tokens_and_stops_cleanly(
    home: Path, stop: signal.Signals
) -> None:
    command = [sys.executable, "-c", "from notary.cli import run; run()"]
    command += ["tsa", "serve", "--host", "127.0.0.1", "--port", "0"]
    command += ["--home", str(home)]
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = _read_url(process)
        issued = request_token(config("served", url), DIGEST, "sha256", home=home)
        process.send_signal(stop)
        _out, err = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

    assert url.startswith("http://127.0.0.1:")
    assert issued.report.verdict is Verdict.VALID
    assert process.returncode == 0
    assert issued.info.serial_hex in err
