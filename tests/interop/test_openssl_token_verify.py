"""OpenSSL's ``ts -verify`` and our verifier agree on tokens from the test issuer."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path
from typing import Any

import pytest

from notary.tsa.verify import verify_token
from notary.verdict import Verdict
from tests.conftest import require_tool
from tests.unit.tsa import _issuer
from tests.unit.tsa._issuer import PKI

DIGEST = hashlib.sha256(b"evidence root").digest()

# scenario -> (leaf, issue() keywords, OpenSSL accepts, we accept)
SCENARIOS: dict[str, tuple[str, dict[str, Any], bool, bool]] = {
    "rsa-pkcs1-ess-v2": ("rsa", {}, True, True),
    "rsa-pkcs1-ess-v1": ("rsa", {"ess": "v1"}, True, True),
    "rsa-signer-second": ("rsa", {"signer_second": True}, True, True),
    "ecdsa-p256": ("p256", {}, True, True),
    "ecdsa-p384": ("p384", {"digest": "sha384"}, True, True),
    "ecdsa-p521": ("p521", {"digest": "sha512"}, True, True),
    "fractional-gen-time": ("rsa", {"gen_time": "20250601120000.1706741Z"}, True, True),
    "ber-envelope": ("rsa", {"ber": True}, True, True),
    "unsorted-signed-attributes": ("rsa", {"unsorted": True}, True, True),
    "corrupted-signature": ("rsa", {"tamper_signature": True}, False, False),
    "eku-not-critical": ("eku_not_critical", {}, False, False),
    "eku-extra-purpose": ("eku_extra", {}, False, False),
    # valid CMS that OpenSSL 3.0's ts code (PKCS#7 based) cannot read or verify
    "rsa-pss": ("rsa", {"signature": "pss"}, False, True),
    "sid-key-identifier": ("rsa", {"sid": "ski"}, False, True),
}


@pytest.fixture(scope="module")
def pki() -> PKI:
    return _issuer.shared_pki()


def _openssl_verify(
    openssl: str, folder: Path, pki: PKI, resp: bytes, gen_time: str
) -> subprocess.CompletedProcess[str]:
    (folder / "resp.tsr").write_bytes(resp)
    (folder / "root.pem").write_bytes(pki.root.pem)
    (folder / "inter.pem").write_bytes(pki.intermediate.pem)
    command = [
        openssl, "ts", "-verify", "-digest", DIGEST.hex(),
        "-in", str(folder / "resp.tsr"),
        "-CAfile", str(folder / "root.pem"),
        "-untrusted", str(folder / "inter.pem"),
        # the test leaf has expired since: judge at genTime, as our verifier does
        "-attime", str(_issuer.epoch(gen_time)),
    ]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_openssl_ts_verify_agrees_with_verify_token(
    pki: PKI, tmp_path: Path, scenario: str
) -> None:
    openssl = require_tool("openssl")
    leaf_name, options, openssl_accepts, we_accept = SCENARIOS[scenario]
    options = dict(options)
    leaf = pki.leaf(leaf_name)
    certs = [pki.intermediate, leaf] if options.pop("signer_second", False) else None
    resp = _issuer.issue(leaf, DIGEST, certs=certs, **options)
    gen_time = options.get("gen_time", _issuer.GEN_TIME)

    result = _openssl_verify(openssl, tmp_path, pki, resp, gen_time)
    report = verify_token(
        resp,
        digest=DIGEST,
        trust_roots=[pki.root.cert],
        untrusted=[pki.intermediate.cert],
    )

    assert ("Verification: OK" in result.stdout) is openssl_accepts, result.stderr
    assert (report.verdict is Verdict.VALID) is we_accept, report.reasons
