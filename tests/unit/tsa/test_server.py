"""The built-in TSA: its CA and certificate files, and the responses it builds."""

from __future__ import annotations

import datetime as dt
import hashlib
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from asn1crypto import algos, cms, tsp
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from notary.errors import BuiltinTSAError
from notary.tsa import server
from notary.tsa.server import POLICY_OID, BuiltinTSA
from notary.tsa.token import load_certificates, parse_status
from notary.tsa.verify import verify_token
from notary.verdict import Verdict

# A fuzzed request whose nonce carries a context tag: asn1crypto raised AttributeError.
MANGLED_NONCE_TAG = (
    "3041020101302f300b060960864801650304020104202d711642b726b04401627ca9fbac32f5c8"
    "530f63903cc4db0225c317921a4881280840000000000000010101ff"
)


def make_request(
    algorithm: str = "sha256",
    *,
    digest: bytes | None = None,
    nonce: int | None = 0x1234_5678_9ABC_DEF0,
    cert_req: bool = True,
    policy: str | None = None,
    version: int = 1,
) -> bytes:
    """Build a TimeStampReq with asn1crypto, including shapes rfc3161ng refuses."""
    if digest is None:
        digest = hashlib.new(algorithm, b"evidence").digest()
    fields: dict[str, object] = {
        "version": version,
        "message_imprint": {
            "hash_algorithm": algos.DigestAlgorithm({"algorithm": algorithm}),
            "hashed_message": digest,
        },
        "cert_req": cert_req,
    }
    if nonce is not None:
        fields["nonce"] = nonce
    if policy is not None:
        fields["req_policy"] = policy
    return bytes(tsp.TimeStampReq(fields).dump())


def tst_info(response: bytes) -> tsp.TSTInfo:
    signed = cms.ContentInfo.load(_token(response))["content"]
    return signed["encap_content_info"]["content"].parsed


def _token(response: bytes) -> bytes:
    return bytes(tsp.TimeStampResp.load(response)["time_stamp_token"].dump())


@pytest.fixture(scope="module")
def tsa(tmp_path_factory: pytest.TempPathFactory) -> BuiltinTSA:
    return BuiltinTSA.open(tmp_path_factory.mktemp("builtin") / "tsa")


def test_open_first_use_creates_keys_with_mode_0600(tmp_path: Path) -> None:
    directory = tmp_path / "tsa"

    tsa = BuiltinTSA.open(directory)

    for name in ("ca.key", "tsa.key"):
        assert stat.S_IMODE((directory / name).stat().st_mode) == 0o600
    assert tsa.ca_path == directory / "ca.pem"
    assert load_certificates(tsa.ca_path) == [tsa.ca_certificate]
    assert sorted(
        p.name for p in directory.iterdir() if not p.name.startswith(".")
    ) == [
        "ca.key",
        "ca.pem",
        "tsa.key",
        "tsa.pem",
    ]


def test_open_directory_that_cannot_be_created_raises(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("in the way")

    with pytest.raises(BuiltinTSAError, match="cannot create its files"):
        BuiltinTSA.open(tmp_path / "file" / "tsa")


def test_open_second_time_reuses_ca_and_certificate(tmp_path: Path) -> None:
    first = BuiltinTSA.open(tmp_path / "tsa")

    second = BuiltinTSA.open(tmp_path / "tsa")

    assert second.ca_certificate == first.ca_certificate
    assert second.certificate == first.certificate


def test_open_racing_threads_create_one_ca(tmp_path: Path) -> None:
    results: list[BuiltinTSA] = []
    start = threading.Barrier(6)

    def open_one() -> None:
        start.wait()
        results.append(BuiltinTSA.open(tmp_path / "tsa"))

    threads = [threading.Thread(target=open_one) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(results) == 6
    assert len({r.ca_certificate.fingerprint(hashes.SHA256()) for r in results}) == 1
    assert len({r.certificate.serial_number for r in results}) == 1


def test_open_racing_processes_create_one_ca(tmp_path: Path) -> None:
    script = (
        "import sys, pathlib; from notary.tsa.server import BuiltinTSA;"
        "print(BuiltinTSA.open(pathlib.Path(sys.argv[1])).ca_certificate.serial_number)"
    )
    command = [sys.executable, "-c", script, str(tmp_path / "tsa")]

    processes = [subprocess.Popen(command, stdout=subprocess.PIPE) for _ in range(4)]
    outputs = {process.communicate(timeout=60)[0] for process in processes}

    assert [p.returncode for p in processes] == [0, 0, 0, 0]
    assert len(outputs) == 1
    expected = BuiltinTSA.open(tmp_path / "tsa").ca_certificate.serial_number
    assert outputs == {f"{expected}\n".encode()}


def test_open_missing_tsa_key_only_raises(tmp_path: Path) -> None:
    BuiltinTSA.open(tmp_path / "tsa")
    (tmp_path / "tsa" / "tsa.key").unlink()

    with pytest.raises(BuiltinTSAError, match=r"tsa\.key is missing"):
        BuiltinTSA.open(tmp_path / "tsa")


def test_open_missing_tsa_pair_reissues_from_same_ca(tmp_path: Path) -> None:
    first = BuiltinTSA.open(tmp_path / "tsa")
    (tmp_path / "tsa" / "tsa.key").unlink()
    (tmp_path / "tsa" / "tsa.pem").unlink()

    second = BuiltinTSA.open(tmp_path / "tsa")

    assert second.ca_certificate == first.ca_certificate
    assert second.certificate != first.certificate


def test_open_key_of_another_certificate_raises(tmp_path: Path) -> None:
    BuiltinTSA.open(tmp_path / "tsa")
    (tmp_path / "tsa" / "tsa.key").write_bytes(
        (tmp_path / "tsa" / "ca.key").read_bytes()
    )

    with pytest.raises(BuiltinTSAError, match=r"does not belong to tsa\.pem"):
        BuiltinTSA.open(tmp_path / "tsa")


def test_open_corrupt_certificate_raises(tmp_path: Path) -> None:
    BuiltinTSA.open(tmp_path / "tsa")
    (tmp_path / "tsa" / "ca.pem").write_text("not a certificate")

    with pytest.raises(BuiltinTSAError, match=r"cannot read certificate"):
        BuiltinTSA.open(tmp_path / "tsa")


def test_ca_certificate_is_a_self_signed_ca(tsa: BuiltinTSA) -> None:
    ca = tsa.ca_certificate

    constraints = ca.extensions.get_extension_for_class(x509.BasicConstraints)
    usage = ca.extensions.get_extension_for_class(x509.KeyUsage)
    assert ca.issuer == ca.subject
    assert constraints.critical and constraints.value.ca
    assert usage.critical and usage.value.key_cert_sign
    ca.verify_directly_issued_by(ca)


def test_tsa_certificate_has_rfc3161_profile(tsa: BuiltinTSA) -> None:
    cert = tsa.certificate

    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage)
    constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert eku.critical and list(eku.value) == [ExtendedKeyUsageOID.TIME_STAMPING]
    assert usage.critical
    assert usage.value.digital_signature and usage.value.content_commitment
    assert not usage.value.key_cert_sign
    assert not constraints.value.ca
    assert dt.timedelta(days=3600) < lifetime < dt.timedelta(days=3700)
    assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)
    cert.verify_directly_issued_by(tsa.ca_certificate)


@pytest.mark.parametrize("algorithm", ["sha256", "sha384", "sha512"])
def test_respond_supported_algorithm_grants_verifiable_token(
    tsa: BuiltinTSA, algorithm: str
) -> None:
    digest = hashlib.new(algorithm, b"evidence").digest()

    response = tsa.respond(make_request(algorithm, digest=digest, nonce=77))

    report = verify_token(
        response,
        digest=digest,
        hash_algorithm=algorithm,
        nonce=77,
        require_nonce=True,
        trust_roots=[tsa.ca_certificate],
    )
    assert report.verdict is Verdict.VALID, report.reasons


def test_respond_granted_token_carries_request_fields(tsa: BuiltinTSA) -> None:
    digest = hashlib.sha384(b"evidence").digest()

    info = tst_info(tsa.respond(make_request("sha384", digest=digest, nonce=2**64 + 5)))

    assert info["version"].native == "v1"
    assert info["policy"].dotted == POLICY_OID
    assert info["message_imprint"]["hash_algorithm"]["algorithm"].native == "sha384"
    assert info["message_imprint"]["hashed_message"].native == digest
    assert info["nonce"].native == 2**64 + 5
    assert 0 < info["serial_number"].native < 2**128
    assert info["accuracy"]["seconds"].native == 1


def test_respond_gen_time_has_milliseconds_without_trailing_zeros(
    tsa: BuiltinTSA,
) -> None:
    raw = [
        tst_info(tsa.respond(make_request()))["gen_time"].contents.decode()
        for _ in range(5)
    ]

    for value in raw:
        whole, _, fraction = value.rstrip("Z").partition(".")
        assert len(whole) == 14
        assert len(fraction) <= 3
        assert not fraction.endswith("0")


def test_respond_serials_are_distinct(tsa: BuiltinTSA) -> None:
    serials = {
        tst_info(tsa.respond(make_request()))["serial_number"].native for _ in range(20)
    }

    assert len(serials) == 20


def test_respond_cert_req_true_includes_tsa_and_ca(tsa: BuiltinTSA) -> None:
    signed = cms.ContentInfo.load(_token(tsa.respond(make_request())))["content"]

    # DER sorts a SET OF, so the order is by encoding, not signer first.
    embedded = sorted(c.chosen.dump() for c in signed["certificates"])
    expected = [tsa.certificate, tsa.ca_certificate]
    assert embedded == sorted(
        c.public_bytes(serialization.Encoding.DER) for c in expected
    )


def test_respond_cert_req_false_includes_no_certificates(tsa: BuiltinTSA) -> None:
    response = tsa.respond(make_request(cert_req=False))

    signed = cms.ContentInfo.load(_token(response))["content"]
    assert signed["certificates"].native is None
    report = verify_token(
        response,
        digest=hashlib.sha256(b"evidence").digest(),
        trust_roots=[tsa.ca_certificate],
        untrusted=[tsa.certificate],
    )
    assert report.verdict is Verdict.VALID, report.reasons


def test_respond_without_nonce_omits_nonce(tsa: BuiltinTSA) -> None:
    info = tst_info(tsa.respond(make_request(nonce=None)))

    assert info["nonce"].native is None


@pytest.mark.parametrize(
    ("request_der", "fail_info"),
    [
        (b"not a request", "badDataFormat"),
        (make_request("sha256", digest=b"\x01" * 31), "badDataFormat"),
        (make_request("sha512", digest=b"\x01" * 32), "badDataFormat"),
        (make_request("sha1"), "badAlg"),
        (make_request("md5"), "badAlg"),
        (make_request(version=2), "badRequest"),
        (make_request(policy="2.25.1"), "unacceptedPolicy"),
        (make_request() + b"\x00", "badDataFormat"),
        (bytes.fromhex(MANGLED_NONCE_TAG), "badDataFormat"),
    ],
    ids=[
        "garbage",
        "short-sha256",
        "sha512-with-sha256-length",
        "sha1",
        "md5",
        "version-2",
        "foreign-policy",
        "trailing-byte",
        "mangled-nonce-tag",
    ],
)
def test_respond_bad_request_rejects_with_fail_info(
    tsa: BuiltinTSA, request_der: bytes, fail_info: str
) -> None:
    response = tsa.respond(request_der)

    status, bits, text = parse_status(response)
    assert (status, bits) == ("rejection", [fail_info])
    assert text


def test_respond_own_policy_requested_grants(tsa: BuiltinTSA) -> None:
    response = tsa.respond(make_request(policy=POLICY_OID))

    assert parse_status(response)[0] == "granted"


def test_respond_is_logged_with_serial_and_imprint(
    tsa: BuiltinTSA, caplog: pytest.LogCaptureFixture
) -> None:
    digest = hashlib.sha256(b"evidence").digest()
    caplog.set_level("INFO", logger="notary.tsa.server")

    info = tst_info(tsa.respond(make_request(digest=digest)))

    serial = format(info["serial_number"].native, "x")
    assert any(
        serial in r.getMessage() and digest.hex() in r.getMessage()
        for r in caplog.records
    )


def test_policy_oid_is_under_the_uuid_arc() -> None:
    parts = server.POLICY_OID.split(".")

    assert parts[:2] == ["2", "25"]
    assert len(parts) == 3
    assert 0 < int(parts[2]) < 2**128
