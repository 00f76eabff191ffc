"""Parsing of responses, tokens and certificates (no verification)."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime
from pathlib import Path

import pytest

from notary.errors import TokenFormatError, TSAStatusError
from notary.tsa.token import (
    load_certificates,
    load_token,
    parse_gen_time,
    parse_status,
    token_info,
)
from tests.unit.tsa import _issuer
from tests.unit.tsa._issuer import PKI

DIGEST = hashlib.sha256(b"evidence root").digest()


@pytest.fixture(scope="module")
def pki() -> PKI:
    return _issuer.shared_pki()


def _pem(der: bytes, label: str) -> bytes:
    body = base64.encodebytes(der).decode("ascii")
    return f"-----BEGIN {label}-----\n{body}-----END {label}-----\n".encode()


def test_load_token_response_returns_embedded_token(pki: PKI) -> None:
    resp = _issuer.issue(pki.leaf(), DIGEST)

    token = load_token(resp)

    assert token == _issuer.bare_token(resp)


def test_load_token_bare_token_returns_it_unchanged(pki: PKI) -> None:
    token = _issuer.bare_token(_issuer.issue(pki.leaf(), DIGEST))

    assert load_token(token) == token


@pytest.mark.parametrize("label", ["TIMESTAMP RESPONSE", "PKCS7", "ANYTHING"])
def test_load_token_pem_with_any_label_decodes(pki: PKI, label: str) -> None:
    resp = _issuer.issue(pki.leaf(), DIGEST)

    token = load_token(_pem(resp, label))

    assert token == _issuer.bare_token(resp)


def test_load_token_ber_envelope_parses(pki: PKI) -> None:
    resp = _issuer.issue(pki.leaf(), DIGEST, ber=True)

    info = token_info(load_token(resp))

    assert resp[:2] == b"\x30\x80"
    assert info.imprint == DIGEST


@pytest.mark.parametrize(
    "garbage",
    [b"", b"\x00", b"\x30\x03\x02\x01", b"not a token at all", b"\x30\x80\x00\x00"],
    ids=["empty", "zero", "truncated", "text", "empty-indefinite"],
)
def test_load_token_garbage_raises_format_error(garbage: bytes) -> None:
    with pytest.raises(TokenFormatError, match="token: "):
        load_token(garbage)


def test_load_token_truncated_response_raises_format_error(pki: PKI) -> None:
    resp = _issuer.issue(pki.leaf(), DIGEST)

    with pytest.raises(TokenFormatError, match="token: "):
        load_token(resp[: len(resp) // 2])


def test_load_token_bad_pem_raises_format_error() -> None:
    with pytest.raises(TokenFormatError, match="token: "):
        load_token(b"-----BEGIN X-----\n!!!!\n-----END X-----\n")


def test_load_token_rejection_without_token_raises_status_error() -> None:
    resp = _issuer.response(
        "rejection", fail_info={"bad_alg", "bad_data_format"}, text="bad request"
    )

    with pytest.raises(TSAStatusError, match="status rejection") as caught:
        load_token(resp)

    assert caught.value.facts == {
        "status": "rejection",
        "fail_info": ["badAlg", "badDataFormat"],
        "status_text": "bad request",
    }


def test_load_token_waiting_raises_status_error() -> None:
    with pytest.raises(TSAStatusError, match="status waiting") as caught:
        load_token(_issuer.response("waiting"))

    assert caught.value.fail_info == []
    assert caught.value.status_text is None


def test_load_token_granted_without_token_raises_status_error() -> None:
    with pytest.raises(TSAStatusError, match="status granted without a token"):
        load_token(_issuer.response("granted"))


def test_parse_status_rejection_returns_names_and_text() -> None:
    resp = _issuer.response("rejection", fail_info={"system_failure"}, text="down")

    assert parse_status(resp) == ("rejection", ["systemFailure"], "down")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("20260218092423.1706741Z", datetime(2026, 2, 18, 9, 24, 23, 170674, UTC)),
        ("20250101120000.5Z", datetime(2025, 1, 1, 12, 0, 0, 500000, UTC)),
        ("20250101120000Z", datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)),
    ],
)
def test_token_info_fractional_gen_time_parses_and_keeps_raw(
    pki: PKI, raw: str, expected: datetime
) -> None:
    resp = _issuer.issue(pki.leaf(), DIGEST, gen_time=raw)

    info = token_info(load_token(resp))

    assert info.gen_time == expected
    assert info.gen_time_raw == raw


@pytest.mark.parametrize("raw", ["20250101120000", "2025010112Z", "20251301120000Z"])
def test_parse_gen_time_malformed_raises_format_error(raw: str) -> None:
    with pytest.raises(TokenFormatError, match="genTime"):
        parse_gen_time(raw)


def test_token_info_reports_every_field(pki: PKI) -> None:
    resp = _issuer.issue(
        pki.leaf(),
        DIGEST,
        serial=0xABCDEF,
        nonce=42,
        policy="1.2.3.4",
        accuracy={"seconds": 1, "millis": 500},
        certs=[pki.intermediate, pki.leaf()],
    )

    info = token_info(load_token(resp))

    assert (info.serial_hex, info.nonce, info.policy) == ("abcdef", 42, "1.2.3.4")
    assert (info.hash_algorithm, info.imprint) == ("sha256", DIGEST)
    assert info.accuracy == "1s 500ms"
    assert info.ordering is False
    assert info.tsa_name is None
    assert info.signer_subject == "CN=Test TSA"
    assert info.certificates == [pki.intermediate.der, pki.leaf().der]


def test_token_info_nonce_with_high_bit_is_positive_integer(pki: PKI) -> None:
    nonce = int.from_bytes(b"\x80" + bytes(range(1, 20)), "big")
    resp = _issuer.issue(pki.leaf(), DIGEST, nonce=nonce)

    assert token_info(load_token(resp)).nonce == nonce


def test_load_certificates_pem_with_several_returns_all(
    pki: PKI, tmp_path: Path
) -> None:
    path = tmp_path / "chain.pem"
    path.write_bytes(pki.leaf().pem + pki.intermediate.pem)

    certs = load_certificates(path)

    assert [c.subject.rfc4514_string() for c in certs] == [
        "CN=Test TSA",
        "CN=Test Intermediate",
    ]


def test_load_certificates_der_returns_one(pki: PKI) -> None:
    assert load_certificates(pki.root.der) == [pki.root.cert]


def test_load_certificates_garbage_file_raises_format_error(tmp_path: Path) -> None:
    path = tmp_path / "x.pem"
    path.write_bytes(b"nothing here")

    with pytest.raises(TokenFormatError, match=r"x\.pem: not a PEM or DER"):
        load_certificates(path)


def test_load_certificates_missing_file_raises_format_error(tmp_path: Path) -> None:
    with pytest.raises(TokenFormatError, match="cannot read"):
        load_certificates(tmp_path / "absent.pem")
