"""Real RFC 3161 tokens from public TSAs, judged at their genTime.

The expected verdicts follow the data set's index: OpenSSL's "OK" (with ``-attime``
where certificates have expired since) means valid; the corrupted signature and the
imprint mismatch mean invalid; the rejection is a typed status error; tokens without
certificates are valid with the TSA certificate supplied and indeterminate without it.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from asn1crypto import tsp

from notary.errors import TSAStatusError
from notary.tsa.token import load_certificates
from notary.tsa.verify import TokenReport, verify_token
from notary.verdict import Verdict

SIGSTAGE_ROOT = "sigstage/sigstage_root.pem"
ADOBE_ROOT = "globalsign-adobe/adobe_root_ca.pem"
ADOBE_CHAIN = "globalsign-adobe/globalsign_adobe_cds_g2_chain_from_resp_nonce.pem"
FREETSA_ROOT = "freetsa-2022/cacert.pem"


@dataclass
class Case:
    """One token, what it is checked against, and the verdict expected."""

    token: str
    verdict: Verdict
    data: str | None = None
    digest: str | None = None
    query: str | None = None
    roots: list[str] = field(default_factory=list)
    untrusted: list[str] = field(default_factory=list)
    warnings: int = 0


CASES = {
    "sigstage-sha256": Case(
        "sigstage/response-sha256.tsr",
        Verdict.VALID,
        data="sigstage/hello.txt",
        roots=[SIGSTAGE_ROOT],
        untrusted=["sigstage/sigstage_tsa_leaf.pem"],
    ),
    "sigstage-sha256-other-request": Case(
        "sigstage/response-sha256.tsr",
        Verdict.INVALID,
        query="sigstage/request.der",
        roots=[SIGSTAGE_ROOT],
    ),
    "sigstage-sha384": Case(
        "sigstage/response-sha384.tsr",
        Verdict.VALID,
        data="sigstage/hello.txt",
        roots=[SIGSTAGE_ROOT],
    ),
    "sigstage-sha512": Case(
        "sigstage/response-sha512.tsr",
        Verdict.VALID,
        data="sigstage/hello.txt",
        roots=[SIGSTAGE_ROOT],
    ),
    "sigstage-no-cert": Case(
        "sigstage/response-no-embedded-cert.tsr",
        Verdict.INDETERMINATE,
        data="sigstage/hello.txt",
        roots=[SIGSTAGE_ROOT],
    ),
    "sigstage-no-cert-leaf-supplied": Case(
        "sigstage/response-no-embedded-cert.tsr",
        Verdict.VALID,
        data="sigstage/hello.txt",
        roots=[SIGSTAGE_ROOT],
        untrusted=["sigstage/sigstage_tsa_leaf.pem"],
    ),
    "sigstage-invalid-signature": Case(
        "sigstage/response-invalid-signature.tsr",
        Verdict.INVALID,
        data="sigstage/hello.txt",
        roots=[SIGSTAGE_ROOT],
    ),
    # the intermediate's EKU names only an Adobe purpose: accepted, with a warning
    "globalsign-nonce": Case(
        "globalsign-adobe/resp_nonce.tsr",
        Verdict.VALID,
        query="globalsign-adobe/req_nonce.tsq",
        roots=[ADOBE_ROOT],
        warnings=1,
    ),
    "globalsign-no-nonce": Case(
        "globalsign-adobe/resp_no_nonce.tsr",
        Verdict.VALID,
        query="globalsign-adobe/req_no_nonce.tsq",
        roots=[ADOBE_ROOT],
        warnings=1,
    ),
    "globalsign-no-cert": Case(
        "globalsign-adobe/resp_no_cert.tsr",
        Verdict.INDETERMINATE,
        query="globalsign-adobe/req_no_cert.tsq",
        roots=[ADOBE_ROOT],
    ),
    "globalsign-no-cert-chain-supplied": Case(
        "globalsign-adobe/resp_no_cert.tsr",
        Verdict.VALID,
        query="globalsign-adobe/req_no_cert.tsq",
        roots=[ADOBE_ROOT],
        untrusted=[ADOBE_CHAIN],
        warnings=1,
    ),
    "globalsign-rejection": Case(
        "globalsign-adobe/resp_rejection.tsr",
        Verdict.INVALID,
        data="globalsign-adobe/data.txt",
        roots=[ADOBE_ROOT],
    ),
    "globalsign-aatl-bare-token": Case(
        "globalsign-adobe/token_aatl.tst",
        Verdict.VALID,
        digest="2da82c1572ff020524e05069219975c9ba90723f1a4dd5b9722aee8ec547a2ff",
        roots=["globalsign-adobe/globalsign_root_r3.pem"],
    ),
    "digicert-2018": Case(
        "digicert-2018/digicert_sha2_2018.tsr",
        Verdict.VALID,
        data="digicert-2018/hello_newline.txt",
        roots=["digicert-2018/digicert_assured_id_root_ca.pem"],
    ),
    "digicert-2018-other-data": Case(
        "digicert-2018/digicert_sha2_2018.tsr",
        Verdict.INVALID,
        data="sigstage/hello.txt",
        roots=["digicert-2018/digicert_assured_id_root_ca.pem"],
    ),
    "freetsa-with-certs": Case(
        "freetsa-2022/diplome.tsr",
        Verdict.VALID,
        query="freetsa-2022/diplome.tsq",
        roots=[FREETSA_ROOT],
    ),
    "freetsa-no-cert": Case(
        "freetsa-2022/file.tsr",
        Verdict.INDETERMINATE,
        query="freetsa-2022/file.tsq",
        roots=[FREETSA_ROOT],
    ),
    "freetsa-no-cert-tsa-supplied": Case(
        "freetsa-2022/file.tsr",
        Verdict.VALID,
        query="freetsa-2022/file.tsq",
        roots=[FREETSA_ROOT],
        untrusted=["freetsa-2022/tsa.crt"],
    ),
}


def _judge(folder: Path, case: Case) -> TokenReport:
    kwargs: dict[str, Any] = {
        "trust_roots": [c for p in case.roots for c in load_certificates(folder / p)],
        "untrusted": [c for p in case.untrusted for c in load_certificates(folder / p)],
    }
    if case.data:
        kwargs["data"] = (folder / case.data).read_bytes()
    if case.digest:
        kwargs["digest"] = bytes.fromhex(case.digest)
    if case.query:
        kwargs.update(_from_query((folder / case.query).read_bytes()))
    return verify_token((folder / case.token).read_bytes(), **kwargs)


def _from_query(der: bytes) -> dict[str, Any]:
    """Return what a TimeStampReq asked for, as verify_token arguments."""
    request = tsp.TimeStampReq.load(der)
    imprint = request["message_imprint"]
    return {
        "digest": imprint["hashed_message"].native,
        "hash_algorithm": imprint["hash_algorithm"]["algorithm"].native,
        "nonce": request["nonce"].native,
    }


@pytest.mark.parametrize("name", sorted(CASES))
def test_verify_token_public_token_gets_indexed_verdict(
    shared_data: Path, name: str
) -> None:
    case = CASES[name]

    report = _judge(shared_data / "tsa", case)

    print(f"{name}: {report.verdict} {report.reasons} {report.warnings}")
    assert report.verdict is case.verdict, report.reasons
    assert len(report.warnings) == case.warnings, report.warnings


def test_verify_token_public_rejection_raises_typed_status_error(
    shared_data: Path,
) -> None:
    report = _judge(shared_data / "tsa", CASES["globalsign-rejection"])

    with pytest.raises(TSAStatusError, match="status: rejection") as caught:
        report.raise_for_verdict()

    assert caught.value.fail_info == ["addInfoNotAvailable"]
    assert caught.value.status_text == "Error during serial number generation."


def test_public_token_table_covers_every_token_file(shared_data: Path) -> None:
    folder = shared_data / "tsa"
    files = {
        str(p.relative_to(folder))
        for p in folder.rglob("*")
        if p.suffix in {".tsr", ".tst"}
    }

    assert files == {case.token for case in CASES.values()}


def test_verify_token_public_token_never_touches_the_network(
    shared_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("verification attempted a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)

    # DigiCert's certificates name CRL and OCSP URLs; none may be fetched
    report = _judge(shared_data / "tsa", CASES["digicert-2018"])

    assert report.verdict is Verdict.VALID, report.reasons
