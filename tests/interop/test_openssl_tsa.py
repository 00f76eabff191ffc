"""RFC 3161 interoperability with OpenSSL, in both directions.

- Tokens of the built-in TSA pass ``openssl ts -verify`` (by digest and by query file).
- The TSA client accepts tokens from an independent TSA: OpenSSL's ``openssl ts -reply``
  with a CA, a TSA certificate and a configuration that this test makes with the
  ``openssl`` command, behind a tiny HTTP handler on 127.0.0.1.
"""

from __future__ import annotations

import hashlib
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from notary.config import TSAConfig
from notary.errors import TokenIndeterminateError
from notary.tsa.client import make_request, request_token
from notary.tsa.server import BuiltinTSA
from notary.verdict import Verdict
from tests.conftest import require_tool
from tests.tsa_http import StubReply, StubRequest, stub_server

ALGORITHMS = ["sha256", "sha384", "sha512"]
# A UUID-derived OID (arc 2.25) naming the test TSA's policy; owned by nobody else.
OPENSSL_POLICY = "2.25.154518605638769725242847755505560798270"

OPENSSL_CONFIG = """\
[ req ]
distinguished_name = req_dn
prompt = no

[ req_dn ]
CN = placeholder

[ ca_ext ]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash

[ tsa_ext ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, nonRepudiation
extendedKeyUsage = critical, timeStamping
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid

[ tsa ]
default_tsa = test_tsa

[ test_tsa ]
dir = {directory}
serial = $dir/serial
crypto_device = builtin
signer_cert = $dir/tsa.pem
certs = $dir/ca.pem
signer_key = $dir/tsa.key
signer_digest = sha256
default_policy = {policy}
digests = sha256, sha384, sha512
accuracy = secs:1, millisecs:500
clock_precision_digits = 3
ordering = no
tsa_name = yes
ess_cert_id_chain = no
ess_cert_id_alg = sha256
"""


def openssl(*args: str | Path, cwd: Path | None = None) -> str:
    """Run ``openssl`` with ``args``; return stdout+stderr, fail the test on error."""
    result = subprocess.run(
        ["openssl", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, f"openssl {args[0]} failed:\n{result.stderr}"
    return result.stdout + result.stderr


@pytest.fixture(scope="module")
def builtin(tmp_path_factory: pytest.TempPathFactory) -> BuiltinTSA:
    require_tool("openssl")
    return BuiltinTSA.open(tmp_path_factory.mktemp("builtin") / "tsa")


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_builtin_token_passes_openssl_verify_by_digest(
    builtin: BuiltinTSA, tmp_path: Path, algorithm: str
) -> None:
    digest = hashlib.new(algorithm, b"root of the tree").digest()
    (tmp_path / "x.tsr").write_bytes(
        builtin.respond(make_request(digest, algorithm, 7))
    )

    output = openssl(
        "ts", "-verify", "-digest", digest.hex(), "-in", tmp_path / "x.tsr",
        "-CAfile", builtin.ca_path,
    )  # fmt: skip

    assert "Verification: OK" in output


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_builtin_token_passes_openssl_verify_by_query_file(
    builtin: BuiltinTSA, tmp_path: Path, algorithm: str
) -> None:
    digest = hashlib.new(algorithm, b"root of the tree").digest()
    query = make_request(digest, algorithm, 2**62 + 3)
    (tmp_path / "req.tsq").write_bytes(query)
    (tmp_path / "x.tsr").write_bytes(builtin.respond(query))

    output = openssl(
        "ts", "-verify", "-queryfile", tmp_path / "req.tsq", "-in", tmp_path / "x.tsr",
        "-CAfile", builtin.ca_path,
    )  # fmt: skip

    assert "Verification: OK" in output


def test_builtin_token_without_certificates_needs_untrusted_tsa_cert(
    builtin: BuiltinTSA, tmp_path: Path
) -> None:
    digest = hashlib.sha256(b"root").digest()
    query = make_request(digest, "sha256", 11)
    # certReq is the last field of the request: flip it to FALSE (DER 01 01 00).
    assert query.endswith(b"\x01\x01\xff")
    no_certs = query[:-1] + b"\x00"
    (tmp_path / "x.tsr").write_bytes(builtin.respond(no_certs))
    tsa_pem = builtin.directory / "tsa.pem"

    output = openssl(
        "ts", "-verify", "-digest", digest.hex(), "-in", tmp_path / "x.tsr",
        "-CAfile", builtin.ca_path, "-untrusted", tsa_pem,
    )  # fmt: skip

    assert "Verification: OK" in output


def test_client_token_from_builtin_passes_openssl_verify(
    home: Path, tmp_path: Path
) -> None:
    require_tool("openssl")
    digest = hashlib.sha256(b"root").digest()
    issued = request_token(TSAConfig("builtin", "builtin"), digest, "sha256", home=home)
    (tmp_path / "x.tsr").write_bytes(issued.response)

    output = openssl(
        "ts", "-verify", "-digest", digest.hex(), "-in", tmp_path / "x.tsr",
        "-CAfile", home / "tsa" / "ca.pem",
    )  # fmt: skip

    assert "Verification: OK" in output


# --- OpenSSL as the TSA --------------------------------------------------------------


@pytest.fixture(scope="module")
def openssl_tsa(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Make a CA, a TSA certificate and an `openssl ts` config; return their folder."""
    require_tool("openssl")
    directory = tmp_path_factory.mktemp("openssl-tsa")
    config = directory / "tsa.cnf"
    config.write_text(OPENSSL_CONFIG.format(directory=directory, policy=OPENSSL_POLICY))
    (directory / "serial").write_text("01\n")
    openssl(
        "req", "-config", config, "-x509", "-newkey", "rsa:2048", "-nodes",
        "-keyout", "ca.key", "-out", "ca.pem", "-days", "30",
        "-subj", "/O=notary tests/CN=OpenSSL interop CA", "-extensions", "ca_ext",
        cwd=directory,
    )  # fmt: skip
    openssl(
        "req", "-config", config, "-new", "-newkey", "rsa:2048", "-nodes",
        "-keyout", "tsa.key", "-out", "tsa.csr",
        "-subj", "/O=notary tests/CN=OpenSSL interop TSA",
        cwd=directory,
    )  # fmt: skip
    openssl(
        "x509", "-req", "-in", "tsa.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "30", "-out", "tsa.pem",
        "-extfile", config, "-extensions", "tsa_ext",
        cwd=directory,
    )  # fmt: skip
    return directory


@pytest.fixture
def openssl_tsa_url(openssl_tsa: Path, tmp_path: Path) -> Iterator[str]:
    """Serve `openssl ts -reply` over HTTP on 127.0.0.1, one request at a time."""
    lock = threading.Lock()

    def reply(request: StubRequest) -> StubReply:
        with lock:
            (tmp_path / "req.tsq").write_bytes(request.body)
            openssl(
                "ts", "-reply", "-config", openssl_tsa / "tsa.cnf",
                "-queryfile", tmp_path / "req.tsq", "-out", tmp_path / "resp.tsr",
            )  # fmt: skip
            body = (tmp_path / "resp.tsr").read_bytes()
        return StubReply(200, {"Content-Type": "application/timestamp-reply"}, body)

    with stub_server(reply) as stub:
        yield stub.url + "/tsr"


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_client_against_openssl_tsa_returns_valid_token(
    home: Path, openssl_tsa: Path, openssl_tsa_url: str, algorithm: str
) -> None:
    digest = hashlib.new(algorithm, b"root of the tree").digest()
    tsa = TSAConfig(
        "openssl", openssl_tsa_url, trust_roots=[str(openssl_tsa / "ca.pem")]
    )

    issued = request_token(tsa, digest, algorithm, home=home)

    assert issued.report.verdict is Verdict.VALID, issued.report.reasons
    assert issued.info.policy == OPENSSL_POLICY
    assert issued.info.hash_algorithm == algorithm
    assert issued.info.imprint == digest
    assert len(issued.info.gen_time_raw) <= len("20261204160000.123Z")
    subjects = [c.subject.rfc4514_string() for c in issued.certificates]
    assert subjects == [
        "CN=OpenSSL interop TSA,O=notary tests",
        "CN=OpenSSL interop CA,O=notary tests",
    ]


def test_client_against_openssl_tsa_untrusted_root_is_refused(
    home: Path, openssl_tsa_url: str
) -> None:
    BuiltinTSA.open(home / "tsa")
    tsa = TSAConfig("openssl", openssl_tsa_url, trust_roots=["tsa/ca.pem"])

    with pytest.raises(TokenIndeterminateError, match="no certification path"):
        request_token(tsa, hashlib.sha256(b"x").digest(), "sha256", home=home)
