"""Token verification: one test per rule, each built from a real-world failure."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import random
from typing import Any

import pytest

from notary.errors import (
    CertificateError,
    CertificateValidityError,
    EKUError,
    ESSCertIDError,
    ImprintMismatchError,
    KeyUsageError,
    NonceMismatchError,
    NotaryError,
    SignatureError,
    TokenFormatError,
    TokenIndeterminateError,
    TSAStatusError,
)
from notary.tsa.verify import TokenReport, verify_token
from notary.verdict import Check, Verdict
from tests.unit.tsa import _issuer
from tests.unit.tsa._issuer import PKI, Identity

DATA = b"evidence root"
DIGEST = hashlib.sha256(DATA).digest()


@pytest.fixture(scope="module")
def pki() -> PKI:
    return _issuer.shared_pki()


def _verify(pki: PKI, resp: bytes, **kwargs: Any) -> TokenReport:
    """Verify against the test root with the intermediate as an extra certificate."""
    kwargs.setdefault("digest", DIGEST)
    kwargs.setdefault("trust_roots", [pki.root.cert])
    kwargs.setdefault("untrusted", [pki.intermediate.cert])
    return verify_token(resp, **kwargs)


def _check(report: TokenReport, name: str) -> Check:
    return next(c for c in report.checks if c.name == name)


def _issue_chain(
    pki: PKI, leaf: Identity, imprint: bytes = DIGEST, **kwargs: Any
) -> bytes:
    """Issue a response whose certificate set is the leaf and the intermediate."""
    return _issuer.issue(leaf, imprint, certs=[leaf, pki.intermediate], **kwargs)


# --- signatures and the base chain ---------------------------------------------------


def test_verify_token_base_chain_is_valid(pki: PKI) -> None:
    resp = _issue_chain(pki, pki.leaf())

    report = _verify(pki, resp, untrusted=[])

    assert report.verdict is Verdict.VALID, report.reasons
    assert report.warnings == []
    report.raise_for_verdict()


@pytest.mark.parametrize("leaf", ["p256", "p384", "p521"])
def test_verify_token_ecdsa_signature_is_valid(pki: PKI, leaf: str) -> None:
    report = _verify(pki, _issue_chain(pki, pki.leaf(leaf)))

    assert report.verdict is Verdict.VALID, report.reasons
    assert "ECDSA" in _check(report, "signature").detail


def test_verify_token_ecdsa_sha384_digest_is_valid(pki: PKI) -> None:
    report = _verify(pki, _issue_chain(pki, pki.leaf("p384"), digest="sha384"))

    assert report.verdict is Verdict.VALID, report.reasons


def test_verify_token_rsa_pss_signature_is_valid(pki: PKI) -> None:
    report = _verify(pki, _issue_chain(pki, pki.leaf(), signature="pss"))

    assert report.verdict is Verdict.VALID, report.reasons
    assert "RSASSA-PSS" in _check(report, "signature").detail


def test_verify_token_corrupted_signature_is_invalid(pki: PKI) -> None:
    report = _verify(pki, _issue_chain(pki, pki.leaf(), tamper_signature=True))

    assert report.verdict is Verdict.INVALID
    with pytest.raises(SignatureError, match="signature: does not verify"):
        report.raise_for_verdict()


def test_verify_token_message_digest_mismatch_is_invalid(pki: PKI) -> None:
    resp = _issue_chain(pki, pki.leaf(), message_digest=b"\x00" * 32)

    report = _verify(pki, resp)

    assert _check(report, "message_digest").ok is False
    with pytest.raises(SignatureError, match="message_digest: does not match"):
        report.raise_for_verdict()


def test_verify_token_content_type_not_tst_info_is_invalid(pki: PKI) -> None:
    report = _verify(pki, _issue_chain(pki, pki.leaf(), content_type="data"))

    assert report.verdict is Verdict.INVALID
    with pytest.raises(TokenFormatError, match="content_type: not id-ct-TSTInfo"):
        report.raise_for_verdict()


def test_verify_token_unsorted_signed_attributes_verify_as_received(pki: PKI) -> None:
    # DigiCert (2018) signed its attributes in an order DER's SET OF would not keep
    report = _verify(pki, _issue_chain(pki, pki.leaf(), unsorted=True))

    assert report.verdict is Verdict.VALID, report.reasons


def test_verify_token_ber_envelope_is_valid(pki: PKI) -> None:
    report = _verify(pki, _issue_chain(pki, pki.leaf(), ber=True))

    assert report.verdict is Verdict.VALID, report.reasons


def test_verify_token_pem_bare_token_is_valid(pki: PKI) -> None:
    token = _issuer.bare_token(_issue_chain(pki, pki.leaf()))
    pem = (
        b"-----BEGIN PKCS7-----\n"
        + base64.encodebytes(token)
        + b"-----END PKCS7-----\n"
    )

    report = _verify(pki, pem)

    assert report.verdict is Verdict.VALID, report.reasons
    assert "bare token" in _check(report, "status").detail


def test_verify_token_garbage_raises_format_error() -> None:
    with pytest.raises(TokenFormatError, match="token: "):
        verify_token(b"garbage", digest=DIGEST)


def test_verify_token_inside_running_event_loop_is_valid(pki: PKI) -> None:
    async def verify() -> TokenReport:
        return _verify(pki, _issue_chain(pki, pki.leaf()))

    assert asyncio.run(verify()).verdict is Verdict.VALID


# --- finding the signer --------------------------------------------------------------


def test_verify_token_signer_listed_second_is_found_by_sid(pki: PKI) -> None:
    resp = _issuer.issue(pki.leaf(), DIGEST, certs=[pki.intermediate, pki.leaf()])

    report = _verify(pki, resp)

    assert report.verdict is Verdict.VALID, report.reasons
    assert _check(report, "signer_certificate").detail == "CN=Test TSA"


def test_verify_token_subject_key_identifier_sid_is_valid(pki: PKI) -> None:
    report = _verify(pki, _issue_chain(pki, pki.leaf(), sid="ski"))

    assert report.verdict is Verdict.VALID, report.reasons


def test_verify_token_empty_certificate_set_is_indeterminate(pki: PKI) -> None:
    resp = _issuer.issue(pki.leaf(), DIGEST, certs=[])

    report = _verify(pki, resp)

    assert report.verdict is Verdict.INDETERMINATE
    assert report.reasons[0].startswith("signer_certificate: not available")
    with pytest.raises(TokenIndeterminateError, match="cannot decide"):
        report.raise_for_verdict()


def test_verify_token_empty_certificate_set_with_signer_supplied_is_valid(
    pki: PKI,
) -> None:
    resp = _issuer.issue(pki.leaf(), DIGEST, certs=[])

    report = _verify(pki, resp, untrusted=[pki.intermediate.cert, pki.leaf().cert])

    assert report.verdict is Verdict.VALID, report.reasons


def test_verify_token_other_cert_present_but_not_signer_is_indeterminate(
    pki: PKI,
) -> None:
    resp = _issuer.issue(pki.leaf(), DIGEST, certs=[pki.leaf("p256")])

    report = _verify(pki, resp)

    assert report.verdict is Verdict.INDETERMINATE


# --- ESSCertID -----------------------------------------------------------------------


def test_verify_token_ess_cert_id_v1_is_valid(pki: PKI) -> None:
    report = _verify(pki, _issue_chain(pki, pki.leaf(), ess="v1"))

    assert report.verdict is Verdict.VALID, report.reasons
    assert _check(report, "ess_cert_id").detail.startswith("sha1")


def test_verify_token_ess_cert_id_absent_is_invalid(pki: PKI) -> None:
    report = _verify(pki, _issue_chain(pki, pki.leaf(), ess=None))

    with pytest.raises(ESSCertIDError, match="no SigningCertificate"):
        report.raise_for_verdict()


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_verify_token_ess_cert_id_of_other_cert_is_invalid(
    pki: PKI, version: str
) -> None:
    resp = _issue_chain(pki, pki.leaf(), ess=version, ess_cert=pki.leaf("p256"))

    report = _verify(pki, resp)

    with pytest.raises(ESSCertIDError, match="certificate hash") as caught:
        report.raise_for_verdict()
    assert caught.value.expected != caught.value.actual


# --- signer certificate rules and the path -------------------------------------------


@pytest.mark.parametrize(
    ("leaf", "error", "reason"),
    [
        ("eku_not_critical", EKUError, "signer_eku: not critical"),
        ("eku_extra", EKUError, "signer_eku: not only timeStamping"),
        ("eku_absent", EKUError, "signer_eku: extended key usage absent"),
        ("is_ca", CertificateError, "signer_not_ca: is a CA"),
        ("no_signing_usage", KeyUsageError, "signer_key_usage: does not allow"),
    ],
)
def test_verify_token_bad_signer_certificate_is_invalid(
    pki: PKI, leaf: str, error: type[Exception], reason: str
) -> None:
    report = _verify(pki, _issue_chain(pki, pki.leaf(leaf)))

    assert report.verdict is Verdict.INVALID
    assert report.reasons == [next(r for r in report.reasons if r.startswith(reason))]
    with pytest.raises(error, match=reason):
        report.raise_for_verdict()


def test_verify_token_eku_error_names_the_certificate(pki: PKI) -> None:
    report = _verify(pki, _issue_chain(pki, pki.leaf("eku_extra")))

    with pytest.raises(EKUError, match="timeStamping") as caught:
        report.raise_for_verdict()
    assert caught.value.certificate == "CN=TSA EKU extra"
    assert caught.value.expected == ["1.3.6.1.5.5.7.3.8"]


def test_verify_token_intermediate_server_auth_only_warns(pki: PKI) -> None:
    leaf = pki.leaf("under_server_ca")
    resp = _issuer.issue(leaf, DIGEST, certs=[leaf, pki.leaf("server_ca")])

    report = _verify(pki, resp, untrusted=[])

    assert report.verdict is Verdict.VALID, report.reasons
    assert _check(report, "path_eku").warning is True
    assert report.warnings == [
        "path_eku: CA CN=ServerAuth Intermediate restricts EKU to "
        "['1.3.6.1.5.5.7.3.1'] (no timeStamping)"
    ]


def test_verify_token_after_tsa_certificate_expiry_is_valid(pki: PKI) -> None:
    # the leaf expired 2026-01-01; genTime 2025-06-01 is what counts, not "now"
    report = _verify(pki, _issue_chain(pki, pki.leaf(), gen_time="20250601120000Z"))

    assert pki.leaf().cert.not_valid_after_utc.year == 2026
    assert report.verdict is Verdict.VALID, report.reasons


def test_verify_token_gen_time_before_not_before_is_invalid(pki: PKI) -> None:
    resp = _issue_chain(pki, pki.leaf(), gen_time="20231231235959Z")

    report = _verify(pki, resp)

    assert _check(report, "path").ok is False
    with pytest.raises(CertificateValidityError, match="genTime outside") as caught:
        report.raise_for_verdict()
    assert caught.value.actual == "2023-12-31T23:59:59+00:00"


def test_verify_token_without_trust_root_is_indeterminate(pki: PKI) -> None:
    report = _verify(pki, _issue_chain(pki, pki.leaf()), trust_roots=[])

    assert report.verdict is Verdict.INDETERMINATE
    assert report.reasons == ["path: no trust root supplied"]


def test_verify_token_pinned_tsa_certificate_as_root_is_valid(pki: PKI) -> None:
    report = _verify(pki, _issue_chain(pki, pki.leaf()), trust_roots=[pki.leaf().cert])

    assert report.verdict is Verdict.VALID, report.reasons


def test_verify_token_unrelated_root_is_indeterminate(pki: PKI) -> None:
    stranger = _issuer.make_cert("Stranger Root", pki.rsa_key, ca=True)

    report = _verify(pki, _issue_chain(pki, pki.leaf()), trust_roots=[stranger.cert])

    assert report.verdict is Verdict.INDETERMINATE
    assert report.reasons[0].startswith("path: no certification path")


# --- imprint -------------------------------------------------------------------------


def test_verify_token_data_supplied_is_hashed_and_valid(pki: PKI) -> None:
    report = _verify(pki, _issue_chain(pki, pki.leaf()), digest=None, data=DATA)

    assert report.verdict is Verdict.VALID, report.reasons


def test_verify_token_other_digest_raises_imprint_mismatch(pki: PKI) -> None:
    report = _verify(pki, _issue_chain(pki, pki.leaf()), digest=b"\x01" * 32)

    with pytest.raises(ImprintMismatchError, match="imprint: value") as caught:
        report.raise_for_verdict()
    assert caught.value.expected == "01" * 32
    assert caught.value.actual == DIGEST.hex()


def test_verify_token_sha1_reply_to_sha256_request_is_invalid_with_warning(
    pki: PKI,
) -> None:
    sha1 = hashlib.sha1(DATA).digest()
    resp = _issue_chain(pki, pki.leaf(), hash_algorithm="sha1", imprint=sha1)

    report = _verify(pki, resp, hash_algorithm="sha256")

    assert report.verdict is Verdict.INVALID
    assert _check(report, "imprint").warning is True
    with pytest.raises(ImprintMismatchError, match="expected sha256, got sha1"):
        report.raise_for_verdict()


def test_verify_token_sha1_imprint_matching_is_valid_with_warning(pki: PKI) -> None:
    sha1 = hashlib.sha1(DATA).digest()
    resp = _issue_chain(pki, pki.leaf(), hash_algorithm="sha1", imprint=sha1)

    report = _verify(pki, resp, digest=None, data=DATA)

    assert report.verdict is Verdict.VALID
    assert report.warnings == [f"imprint: sha1 {sha1.hex()}; weak algorithm sha1"]


def test_verify_token_sha1_signature_digest_warns(pki: PKI) -> None:
    report = _verify(pki, _issue_chain(pki, pki.leaf(), digest="sha1"))

    assert report.verdict is Verdict.VALID, report.reasons
    assert {c.name for c in report.checks if c.warning} == {
        "message_digest",
        "signature",
    }


def test_verify_token_unknown_imprint_algorithm_is_indeterminate(pki: PKI) -> None:
    resp = _issue_chain(pki, pki.leaf(), hash_algorithm="1.2.3.4")

    report = _verify(pki, resp)

    assert report.verdict is Verdict.INDETERMINATE
    assert report.reasons == ["imprint: unknown hash algorithm 1.2.3.4"]


def test_verify_token_no_digest_or_data_is_indeterminate(pki: PKI) -> None:
    report = _verify(pki, _issue_chain(pki, pki.leaf()), digest=None)

    assert report.verdict is Verdict.INDETERMINATE
    assert report.reasons == ["imprint: no data or digest supplied to compare"]


# --- nonce ---------------------------------------------------------------------------


def test_verify_token_nonce_missing_when_required_raises_nonce_error(pki: PKI) -> None:
    report = _verify(pki, _issue_chain(pki, pki.leaf()), require_nonce=True)

    with pytest.raises(NonceMismatchError, match="nonce: missing"):
        report.raise_for_verdict()


def test_verify_token_requested_nonce_missing_is_invalid(pki: PKI) -> None:
    report = _verify(pki, _issue_chain(pki, pki.leaf()), nonce=7)

    with pytest.raises(NonceMismatchError, match="nonce: missing"):
        report.raise_for_verdict()


@pytest.mark.parametrize(
    "nonce_bytes",
    [b"\x00\x7f" + b"\x11" * 18, b"\xff" * 20, b"\x80" + b"\x00" * 7],
    ids=["leading-zero", "all-high-bits", "high-bit-then-zeros"],
)
def test_verify_token_nonce_compared_as_integer_is_valid(
    pki: PKI, nonce_bytes: bytes
) -> None:
    nonce = int.from_bytes(nonce_bytes, "big")

    report = _verify(pki, _issue_chain(pki, pki.leaf(), nonce=nonce), nonce=nonce)

    assert report.verdict is Verdict.VALID, report.reasons


def test_verify_token_other_nonce_is_invalid(pki: PKI) -> None:
    report = _verify(pki, _issue_chain(pki, pki.leaf(), nonce=0x80), nonce=0x81)

    with pytest.raises(NonceMismatchError, match="expected 0x81, got 0x80"):
        report.raise_for_verdict()


# --- status --------------------------------------------------------------------------


def test_verify_token_rejection_raises_typed_status_error() -> None:
    resp = _issuer.response("rejection", fail_info={"bad_alg"}, text="no sha1")

    report = verify_token(resp, digest=DIGEST)

    assert report.verdict is Verdict.INVALID
    assert report.info is None
    with pytest.raises(TSAStatusError, match="status: rejection") as caught:
        report.raise_for_verdict()
    assert caught.value.fail_info == ["badAlg"]
    assert caught.value.status_text == "no sha1"


def test_verify_token_waiting_is_invalid() -> None:
    report = verify_token(_issuer.response("waiting"), digest=DIGEST)

    with pytest.raises(TSAStatusError, match="status: waiting"):
        report.raise_for_verdict()


def test_verify_token_granted_with_mods_is_checked_like_granted(pki: PKI) -> None:
    resp = _issue_chain(pki, pki.leaf(), status="granted_with_mods")

    report = _verify(pki, resp)

    assert report.verdict is Verdict.VALID, report.reasons
    assert _check(report, "status").detail == "grantedWithMods"


# --- report --------------------------------------------------------------------------


def test_token_report_to_json_has_summary_fields(pki: PKI) -> None:
    resp = _issue_chain(pki, pki.leaf(), nonce=255, serial=0xBEEF)

    document = _verify(pki, resp, nonce=255).to_json()

    assert document["verdict"] == "valid"
    assert document["reasons"] == []
    assert document["serial"] == "beef"
    assert document["nonce"] == "ff"
    assert document["gen_time"] == "2025-06-01T12:00:00+00:00"
    assert document["tsa"] == "CN=Test TSA"
    assert document["hash_algorithm"] == "sha256"
    assert document["policy"] == "1.3.6.1.4.1.99999.1"
    assert {c["name"] for c in document["checks"]} >= {"signature", "path", "nonce"}


def test_verify_token_mutated_bytes_never_raise_foreign_errors(pki: PKI) -> None:
    resp = _issue_chain(pki, pki.leaf(), nonce=5)
    rng = random.Random(20261204)

    for _ in range(200):
        mutated = bytearray(resp)
        for _ in range(rng.randint(1, 3)):
            mutated[rng.randrange(len(mutated))] = rng.randrange(256)
        try:
            report = _verify(pki, bytes(mutated))
        except NotaryError:
            continue
        report.to_json()
