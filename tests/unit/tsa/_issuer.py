"""A test-only RFC 3161 issuer and test PKI, independent of the production TSA.

Certificates come from cryptography with explicit validity dates (no clock involved);
responses are assembled with asn1crypto. Every knob a test needs to reproduce a real
TSA's quirk is a keyword argument of `issue`.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from asn1crypto import algos, cms, core, tsp
from asn1crypto import x509 as ax509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

Key = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey

ROOT_FROM = datetime(2020, 1, 1, tzinfo=UTC)
ROOT_UNTIL = datetime(2040, 1, 1, tzinfo=UTC)
LEAF_FROM = datetime(2024, 1, 1, tzinfo=UTC)
LEAF_UNTIL = datetime(2026, 1, 1, tzinfo=UTC)
GEN_TIME = "20250601120000Z"  # inside the leaf's validity; the leaf has expired since
TIME_STAMPING = ExtendedKeyUsageOID.TIME_STAMPING
SERVER_AUTH = ExtendedKeyUsageOID.SERVER_AUTH


@dataclass
class Identity:
    """A certificate and its private key."""

    cert: x509.Certificate
    key: Key

    @property
    def der(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.DER)

    @property
    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)


def make_key(kind: str = "rsa") -> Key:
    """Return a new key: ``rsa`` (2048) or ``p256``/``p384``/``p521``."""
    curves = {"p256": ec.SECP256R1(), "p384": ec.SECP384R1(), "p521": ec.SECP521R1()}
    if kind == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return ec.generate_private_key(curves[kind])


def make_cert(
    name: str,
    key: Key,
    issuer: Identity | None = None,
    *,
    ca: bool = False,
    eku: list[x509.ObjectIdentifier] | None = None,
    eku_critical: bool = True,
    key_usage: str | None = "sign",
    not_before: datetime = LEAF_FROM,
    not_after: datetime = LEAF_UNTIL,
    serial: int | None = None,
) -> Identity:
    """Return a certificate for ``key`` signed by ``issuer`` (self-signed if None)."""
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    signer_key = issuer.key if issuer else key
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.cert.subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(serial or x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
        )
    )
    if issuer is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(
                issuer.key.public_key()  # type: ignore[arg-type]
            ),
            critical=False,
        )
    if eku is not None:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage(eku), critical=eku_critical
        )
    if key_usage is not None:
        builder = builder.add_extension(_key_usage(ca, key_usage), critical=True)
    return Identity(builder.sign(signer_key, hashes.SHA256()), key)


def _key_usage(ca: bool, kind: str) -> x509.KeyUsage:
    sign = kind == "sign"
    return x509.KeyUsage(
        digital_signature=sign,
        content_commitment=False,
        key_encipherment=kind == "encipher",
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


@dataclass
class PKI:
    """Root → intermediate (no EKU) → TSA leaves; keys reused to keep tests fast."""

    root: Identity
    intermediate: Identity
    rsa_key: Key
    leaves: dict[str, Identity] = field(default_factory=dict)

    def leaf(self, name: str = "rsa") -> Identity:
        return self.leaves[name]


@functools.cache
def shared_pki() -> PKI:
    """Return one test PKI per test session (key generation is the slow part)."""
    return build_pki()


def build_pki() -> PKI:
    """Return the test PKI with one leaf per scenario (see ``leaves`` keys)."""
    root_key, inter_key, rsa_key = make_key("p256"), make_key("p256"), make_key("rsa")
    root = make_cert(
        "Test Root", root_key, ca=True, not_before=ROOT_FROM, not_after=ROOT_UNTIL
    )
    inter = make_cert(
        "Test Intermediate",
        inter_key,
        root,
        ca=True,
        not_before=ROOT_FROM,
        not_after=ROOT_UNTIL,
    )
    pki = PKI(root=root, intermediate=inter, rsa_key=rsa_key)
    ts = [TIME_STAMPING]
    pki.leaves["rsa"] = make_cert("Test TSA", rsa_key, inter, eku=ts)
    for curve in ("p256", "p384", "p521"):
        pki.leaves[curve] = make_cert(
            f"Test TSA {curve}", make_key(curve), inter, eku=ts
        )
    pki.leaves["eku_not_critical"] = make_cert(
        "TSA EKU not critical", rsa_key, inter, eku=ts, eku_critical=False
    )
    pki.leaves["eku_extra"] = make_cert(
        "TSA EKU extra", rsa_key, inter, eku=[TIME_STAMPING, SERVER_AUTH]
    )
    pki.leaves["eku_absent"] = make_cert("TSA no EKU", rsa_key, inter, eku=None)
    pki.leaves["is_ca"] = make_cert("TSA is a CA", rsa_key, inter, ca=True, eku=ts)
    pki.leaves["no_signing_usage"] = make_cert(
        "TSA encipher only", rsa_key, inter, eku=ts, key_usage="encipher"
    )
    server_ca = make_cert(
        "ServerAuth Intermediate",
        inter_key,
        root,
        ca=True,
        eku=[SERVER_AUTH],
        eku_critical=False,
        not_before=ROOT_FROM,
        not_after=ROOT_UNTIL,
    )
    pki.leaves["server_ca"] = server_ca
    pki.leaves["under_server_ca"] = make_cert(
        "TSA under serverAuth CA", rsa_key, server_ca, eku=ts
    )
    return pki


class _TimeStampResp(core.Sequence):
    _fields = [  # noqa: RUF012
        ("status", tsp.PKIStatusInfo),
        ("time_stamp_token", cms.ContentInfo, {"optional": True}),
    ]


def _digest(name: str, data: bytes) -> bytes:
    return hashlib.new(name, data).digest()


def _gen_time(raw: str) -> core.GeneralizedTime:
    """Return a GeneralizedTime holding exactly ``raw`` (any fraction digits)."""
    encoded = raw.encode("ascii")
    return core.GeneralizedTime.load(b"\x18" + bytes([len(encoded)]) + encoded)


def tst_info(
    imprint: bytes,
    *,
    hash_algorithm: str = "sha256",
    gen_time: str = GEN_TIME,
    serial: int = 0x1234,
    nonce: int | None = None,
    policy: str = "1.3.6.1.4.1.99999.1",
    accuracy: dict[str, int] | None = None,
) -> tsp.TSTInfo:
    """Return a TSTInfo; ``accuracy`` keys: seconds, millis, micros."""
    fields: dict[str, Any] = {
        "version": "v1",
        "policy": policy,
        "message_imprint": {
            "hash_algorithm": {"algorithm": hash_algorithm},
            "hashed_message": imprint,
        },
        "serial_number": serial,
        "gen_time": _gen_time(gen_time),
        "accuracy": accuracy if accuracy is not None else {"seconds": 1},
    }
    if nonce is not None:
        fields["nonce"] = nonce
    return tsp.TSTInfo(fields)


def _ess_attribute(signer: Identity, version: str) -> cms.CMSAttribute:
    cert = ax509.Certificate.load(signer.der)
    issuer_serial = {
        "issuer": [ax509.GeneralName({"directory_name": cert.issuer})],
        "serial_number": cert.serial_number,
    }
    if version == "v1":
        ident = {
            "cert_hash": _digest("sha1", signer.der),
            "issuer_serial": issuer_serial,
        }
        return cms.CMSAttribute(
            {"type": "signing_certificate", "values": [{"certs": [ident]}]}
        )
    ident = {
        "hash_algorithm": {"algorithm": "sha256"},
        "cert_hash": _digest("sha256", signer.der),
        "issuer_serial": issuer_serial,
    }
    return cms.CMSAttribute(
        {"type": "signing_certificate_v2", "values": [{"certs": [ident]}]}
    )


def _unsorted(attributes: list[cms.CMSAttribute]) -> cms.CMSAttributes:
    """Return a SET OF whose elements are kept in descending, non-DER order."""
    body = b"".join(sorted((a.dump() for a in attributes), reverse=True))
    size = len(body).to_bytes((len(body).bit_length() + 7) // 8, "big")
    length = size if len(body) < 0x80 else bytes([0x80 | len(size)]) + size
    return cms.CMSAttributes.load(b"\x31" + length + body)


def _signature_algorithm(signature: str, digest: str) -> dict[str, Any]:
    if signature == "pss":
        return {
            "algorithm": "rsassa_pss",
            "parameters": {
                "hash_algorithm": {"algorithm": digest},
                "mask_gen_algorithm": {
                    "algorithm": "mgf1",
                    "parameters": {"algorithm": digest},
                },
                "salt_length": hashlib.new(digest).digest_size,
                "trailer_field": "trailer_field_bc",
            },
        }
    if signature == "ecdsa":
        return {"algorithm": f"{digest}_ecdsa"}
    return {"algorithm": "rsassa_pkcs1v15"}


def _sign(key: Key, signature: str, digest: str, data: bytes) -> bytes:
    chosen = getattr(hashes, digest.upper())()
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key.sign(data, ec.ECDSA(chosen))
    if signature == "pss":
        pss = padding.PSS(mgf=padding.MGF1(chosen), salt_length=chosen.digest_size)
        return key.sign(data, pss, chosen)
    return key.sign(data, padding.PKCS1v15(), chosen)


def issue(
    signer: Identity,
    imprint: bytes,
    *,
    certs: list[Identity] | None = None,
    signature: str | None = None,
    digest: str = "sha256",
    ess: str | None = "v2",
    ess_cert: Identity | None = None,
    sid: str = "issuer_serial",
    tamper_signature: bool = False,
    message_digest: bytes | None = None,
    content_type: str = "tst_info",
    status: str = "granted",
    ber: bool = False,
    unsorted: bool = False,
    **tst_fields: Any,
) -> bytes:
    """Return a TimeStampResp (DER, or BER envelope with ``ber``) signed by ``signer``.

    ``certs`` is the certificate set in order (default: the signer only; [] for none).
    ``signature``: ``pkcs1`` (default for RSA), ``pss``, ``ecdsa`` (EC keys).
    ``ess``: ``v1``, ``v2`` or None (no SigningCertificate); ``ess_cert`` binds
    another certificate than the signer. ``unsorted`` signs the attributes in
    descending order, not DER's sorted SET OF (DigiCert did so in 2018).
    Other keywords go to `tst_info`.
    """
    tst = tst_info(imprint, **tst_fields)
    tst_der = tst.dump()
    kind = signature or (
        "ecdsa" if isinstance(signer.key, ec.EllipticCurvePrivateKey) else "pkcs1"
    )
    attributes = [
        cms.CMSAttribute({"type": "content_type", "values": ["tst_info"]}),
        cms.CMSAttribute(
            {
                "type": "message_digest",
                "values": [message_digest or _digest(digest, tst_der)],
            }
        ),
    ]
    if ess is not None:
        attributes.append(_ess_attribute(ess_cert or signer, ess))
    signed_attrs = _unsorted(attributes) if unsorted else cms.CMSAttributes(attributes)
    sig = _sign(signer.key, kind, digest, signed_attrs.dump())
    if tamper_signature:
        sig = sig[:-1] + bytes([sig[-1] ^ 1])
    token = _content_info(
        signer, tst, signed_attrs, sig, kind, digest, certs, sid, content_type
    )
    return response(status, token=token, ber=ber)


def _content_info(
    signer: Identity,
    tst: tsp.TSTInfo,
    signed_attrs: cms.CMSAttributes,
    sig: bytes,
    kind: str,
    digest: str,
    certs: list[Identity] | None,
    sid: str,
    content_type: str,
) -> cms.ContentInfo:
    cert = ax509.Certificate.load(signer.der)
    if sid == "ski":
        signer_id = cms.SignerIdentifier(
            {"subject_key_identifier": cert.key_identifier}
        )
    else:
        signer_id = cms.SignerIdentifier(
            {
                "issuer_and_serial_number": {
                    "issuer": cert.issuer,
                    "serial_number": cert.serial_number,
                }
            }
        )
    signer_info = cms.SignerInfo(
        {
            "version": "v3" if sid == "ski" else "v1",
            "sid": signer_id,
            "digest_algorithm": {"algorithm": digest},
            "signed_attrs": signed_attrs,
            "signature_algorithm": _signature_algorithm(kind, digest),
            "signature": sig,
        }
    )
    chosen = [signer] if certs is None else certs
    signed_data = {
        "version": "v3",
        "digest_algorithms": [algos.DigestAlgorithm({"algorithm": digest})],
        "encap_content_info": {
            "content_type": content_type,
            "content": core.ParsableOctetString(tst.dump()),
        },
        "signer_infos": [signer_info],
    }
    if chosen:
        signed_data["certificates"] = [ax509.Certificate.load(c.der) for c in chosen]
    return cms.ContentInfo({"content_type": "signed_data", "content": signed_data})


def response(
    status: str = "granted",
    *,
    token: cms.ContentInfo | None = None,
    fail_info: set[str] | None = None,
    text: str | None = None,
    ber: bool = False,
) -> bytes:
    """Return a TimeStampResp; ``ber`` re-wraps its outer SEQUENCE indefinitely."""
    status_info: dict[str, Any] = {"status": status}
    if text is not None:
        status_info["status_string"] = [text]
    if fail_info:
        status_info["fail_info"] = fail_info
    fields: dict[str, Any] = {"status": status_info}
    if token is not None:
        fields["time_stamp_token"] = token
    der: bytes = _TimeStampResp(fields).dump()
    return _indefinite(der) if ber else der


def _indefinite(der: bytes) -> bytes:
    """Re-encode the outer SEQUENCE with BER indefinite length (X.690 §8.1.3.6)."""
    parsed = core.Sequence.load(der)
    return b"\x30\x80" + parsed.contents + b"\x00\x00"


def bare_token(resp: bytes) -> bytes:
    """Return the TimeStampToken inside a response issued here."""
    return bytes(_TimeStampResp.load(resp)["time_stamp_token"].dump())


def epoch(raw_gen_time: str) -> int:
    """Return the Unix time of a GeneralizedTime string (fraction dropped)."""
    moment = datetime.strptime(raw_gen_time[:14], "%Y%m%d%H%M%S").replace(tzinfo=UTC)
    return int(moment.timestamp())


ONE_DAY = timedelta(days=1)
