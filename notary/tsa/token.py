"""Parse RFC 3161 time-stamp responses and tokens (parse only; checks live in verify).

Untrusted bytes go through asn1crypto, which reads BER as well as DER, so the outer
envelope of a response is decoded leniently; whatever a signature covers is re-encoded
to DER by the verifier. Every failure to parse is a `TokenFormatError`; a response whose
status is not granted is a `TSAStatusError`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from asn1crypto import cms, core, parser, pem, tsp, x509
from cryptography import x509 as cx509
from cryptography.x509.oid import ObjectIdentifier

from notary.errors import TokenFormatError, TSAStatusError

GRANTED_STATUSES = ("granted", "grantedWithMods")
TST_INFO_OID = "1.2.840.113549.1.9.16.1.4"  # id-ct-TSTInfo, RFC 3161 §2.4.2
_SEQUENCE = 16
_OBJECT_IDENTIFIER = 6

# RFC 3161 §2.4.2 / X.690 §11.7: YYYYMMDDhhmmss[.fraction]Z
_GEN_TIME = re.compile(r"^(\d{14})(?:\.(\d{1,9}))?Z$")

# NOTE: asn1crypto reports malformed input mostly as ValueError, but some shapes
# (unexpected universal types inside ANY) surface as AttributeError or TypeError.
_PARSE_ERRORS = (ValueError, TypeError, KeyError, IndexError, AttributeError)

_STATUS_NAMES = {
    "granted": "granted",
    "granted_with_mods": "grantedWithMods",
    "rejection": "rejection",
    "waiting": "waiting",
    "revocation_warning": "revocationWarning",
    "revocation_notification": "revocationNotification",
}


class _TimeStampResp(core.Sequence):  # type: ignore[misc]
    """TimeStampResp with the token optional, as RFC 3161 §2.4.2 has it."""

    _fields = [  # noqa: RUF012 - asn1crypto's declaration style
        ("status", tsp.PKIStatusInfo),
        ("time_stamp_token", cms.ContentInfo, {"optional": True}),
    ]


@dataclass
class TokenInfo:
    """What a token's TSTInfo and SignedData say, as plain values."""

    gen_time: datetime
    gen_time_raw: str
    serial: int
    policy: str
    hash_algorithm: str
    imprint: bytes
    nonce: int | None
    accuracy: str | None
    ordering: bool
    tsa_name: str | None
    signer_subject: str | None
    certificates: list[bytes] = field(default_factory=list)

    @property
    def serial_hex(self) -> str:
        return format(self.serial, "x")


def unarmor(data: bytes) -> bytes:
    """Return DER from ``data``: PEM (any label, first block) or already binary."""
    if not pem.detect(data):
        return data
    try:
        _label, _headers, der = pem.unarmor(data)
    except ValueError as exc:
        raise TokenFormatError(f"token: bad PEM armour ({exc})") from exc
    return bytes(der)


def parse_status(data: bytes) -> tuple[str, list[str], str | None]:
    """Return (status name, failInfo bit names, status text) of a TimeStampResp."""
    resp = _load_response(unarmor(data))
    return _status_of(resp)


def load_token(data: bytes) -> bytes:
    """Return the TimeStampToken (ContentInfo) bytes from a response or bare token.

    ``data`` is a TimeStampResp or a TimeStampToken, DER/BER or PEM. Raises
    `TSAStatusError` (facts: status, fail_info, status_text) when the response was not
    granted or carries no token, `TokenFormatError` when the bytes are neither.
    """
    der = unarmor(data)
    if is_bare_token(der):
        _parse_content_info(der)
        return der
    resp = _load_response(der)
    status, fail_info, text = _status_of(resp)
    token = resp["time_stamp_token"]
    if status not in GRANTED_STATUSES or not token.contents:
        raise TSAStatusError(
            f"tsa: response status {status} without a token "
            f"(failInfo {fail_info or 'none'}, text {text!r})",
            status=status,
            fail_info=fail_info,
            status_text=text,
        )
    token_der = bytes(token.dump())
    _parse_content_info(token_der)
    return token_der


def parse_signed_data(token_der: bytes) -> cms.SignedData:
    """Return the SignedData of a TimeStampToken, fully parsed."""
    info = _parse_content_info(token_der)
    return info["content"]


def parse_tst_info(signed_data: cms.SignedData) -> tsp.TSTInfo:
    """Return the encapsulated TSTInfo of a token's SignedData."""
    try:
        encap = signed_data["encap_content_info"]
        kind = encap["content_type"].dotted
        if kind != TST_INFO_OID:
            raise TokenFormatError(
                f"token: encapsulated content is not TSTInfo "
                f"(expected {TST_INFO_OID}, got {kind})",
                expected=TST_INFO_OID,
                actual=kind,
            )
        tst = tsp.TSTInfo.load(bytes(encap["content"]))
        tst.native  # noqa: B018 - force the lazy parser over every field
    except _PARSE_ERRORS as exc:
        raise TokenFormatError(f"token: TSTInfo does not parse ({exc})") from exc
    return tst


def token_info(token_der: bytes) -> TokenInfo:
    """Return the facts of a TimeStampToken (parse only, nothing verified)."""
    return info_from_signed_data(parse_signed_data(token_der))


def info_from_signed_data(signed_data: cms.SignedData) -> TokenInfo:
    """Return the facts of a token's parsed SignedData (see `parse_signed_data`)."""
    tst = parse_tst_info(signed_data)
    raw = tst["gen_time"].contents.decode("ascii", "replace")
    imprint = tst["message_imprint"]
    nonce = tst["nonce"]
    return TokenInfo(
        gen_time=parse_gen_time(raw),
        gen_time_raw=raw,
        serial=int(tst["serial_number"].native),
        policy=tst["policy"].dotted,
        hash_algorithm=digest_name(imprint["hash_algorithm"]),
        imprint=bytes(imprint["hashed_message"].native),
        nonce=None if isinstance(nonce, core.Void) else int(nonce.native),
        accuracy=_accuracy_text(tst["accuracy"]),
        ordering=bool(tst["ordering"].native),
        tsa_name=_general_name_text(tst["tsa"]),
        signer_subject=_signer_subject(signed_data),
        certificates=embedded_certificates(signed_data),
    )


def parse_gen_time(raw: str) -> datetime:
    """Return an aware UTC datetime for a GeneralizedTime string (1-9 digit fraction).

    Digits beyond microseconds are dropped from the datetime; keep ``raw`` for them.
    """
    match = _GEN_TIME.match(raw)
    if match is None:
        raise TokenFormatError(
            f"token: genTime is not YYYYMMDDhhmmss[.f]Z (got {raw!r})", actual=raw
        )
    try:
        whole = datetime.strptime(match.group(1), "%Y%m%d%H%M%S").replace(tzinfo=UTC)
    except ValueError as exc:
        raise TokenFormatError(f"token: genTime out of range (got {raw!r})") from exc
    fraction = (match.group(2) or "").ljust(6, "0")[:6]
    return whole.replace(microsecond=int(fraction))


def embedded_certificates(signed_data: cms.SignedData) -> list[bytes]:
    """Return the DER of every X.509 certificate in the SignedData, in given order."""
    certs = signed_data["certificates"]
    if isinstance(certs, core.Void):
        return []
    return [bytes(c.chosen.dump()) for c in certs if c.name == "certificate"]


def load_certificates(source: str | Path | bytes) -> list[cx509.Certificate]:
    """Return the certificates of a PEM (one or more blocks) or DER file or buffer.

    Raises `TokenFormatError` naming the file when nothing readable is found.
    """
    name = "certificates"
    if isinstance(source, str | Path):
        name = str(source)
        try:
            source = Path(source).read_bytes()
        except OSError as exc:
            raise TokenFormatError(f"{name}: cannot read ({exc.strerror})") from exc
    try:
        if pem.detect(source):
            return cx509.load_pem_x509_certificates(source)
        return [cx509.load_der_x509_certificate(source)]
    except ValueError as exc:
        raise TokenFormatError(f"{name}: not a PEM or DER certificate ({exc})") from exc


def digest_name(algorithm: Any) -> str:
    """Return the hashlib-style name of a DigestAlgorithm, or its dotted OID."""
    return str(algorithm["algorithm"].native)


def name_to_rfc4514(name: x509.Name) -> str:
    """Return an asn1crypto Name as an RFC 4514 string (as cryptography writes it)."""
    rdns = []
    for rdn in name.chosen:
        attributes = [
            cx509.NameAttribute(
                ObjectIdentifier(atv["type"].dotted), _attribute_text(atv["value"])
            )
            for atv in rdn
        ]
        rdns.append(cx509.RelativeDistinguishedName(attributes))
    return cx509.Name(rdns).rfc4514_string()


def _attribute_text(value: Any) -> str:
    native = value.native
    if isinstance(native, str):
        return native
    return "#" + bytes(value.dump()).hex()


def is_bare_token(data: bytes) -> bool:
    """Tell a bare TimeStampToken (starts with an OID) from a TimeStampResp."""
    der = unarmor(data)
    try:
        _cls, _method, tag, _header, contents, _trailer = parser.parse(der)
        first_tag = parser.parse(contents, strict=False)[2] if contents else None
    except _PARSE_ERRORS as exc:
        raise TokenFormatError(f"token: not DER/BER ASN.1 ({exc})") from exc
    return tag == _SEQUENCE and first_tag == _OBJECT_IDENTIFIER


def _load_response(der: bytes) -> _TimeStampResp:
    try:
        resp: _TimeStampResp = _TimeStampResp.load(der)
        resp["status"].native  # noqa: B018 - force the lazy parser
    except _PARSE_ERRORS as exc:
        raise TokenFormatError(f"token: not a TimeStampResp ({exc})") from exc
    return resp


def _parse_content_info(der: bytes) -> cms.ContentInfo:
    try:
        info = cms.ContentInfo.load(der)
        kind = info["content_type"].native
        if kind != "signed_data":
            raise TokenFormatError(
                f"token: content type is not signedData (got {kind})",
                expected="signed_data",
                actual=kind,
            )
        _force_parse(info["content"])
    except _PARSE_ERRORS as exc:
        raise TokenFormatError(f"token: not a CMS SignedData ({exc})") from exc
    return info


def _force_parse(signed_data: cms.SignedData) -> None:
    """Parse the SignedData's structure now, so gross damage fails here.

    asn1crypto parses lazily and a full parse is costly (tens of milliseconds);
    the deeper parts (attributes, certificates) are read by guarded checks.
    """
    for name in ("version", "digest_algorithms", "encap_content_info"):
        signed_data[name]  # asn1crypto parses a field when it is first accessed
    for signer_info in signed_data["signer_infos"]:
        for name in ("sid", "digest_algorithm", "signed_attrs", "signature"):
            signer_info[name]
    embedded_certificates(signed_data)


def _status_of(resp: _TimeStampResp) -> tuple[str, list[str], str | None]:
    info = resp["status"]
    status_value = info["status"].native
    status = _STATUS_NAMES.get(str(status_value), str(status_value))
    fail_info = info["fail_info"]
    bits = [] if isinstance(fail_info, core.Void) else sorted(fail_info.native)
    texts = info["status_string"]
    text = None if isinstance(texts, core.Void) else " ".join(texts.native)
    return status, [_camel(str(bit)) for bit in bits], text


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


def _accuracy_text(accuracy: Any) -> str | None:
    if isinstance(accuracy, core.Void):
        return None
    parts = []
    for key, unit in (("seconds", "s"), ("millis", "ms"), ("micros", "us")):
        value = accuracy[key].native
        if value is not None:
            parts.append(f"{value}{unit}")
    return " ".join(parts) or "0s"


def _general_name_text(name: Any) -> str | None:
    if isinstance(name, core.Void):
        return None
    if name.name == "directory_name":
        return name_to_rfc4514(name.chosen)
    return f"{name.name}:{name.chosen.native}"


def _signer_subject(signed_data: cms.SignedData) -> str | None:
    """Return the subject of the embedded certificate the SignerInfo's sid names."""
    infos = signed_data["signer_infos"]
    if len(infos) != 1:
        return None
    for der in embedded_certificates(signed_data):
        try:
            cert = x509.Certificate.load(der)
            if sid_matches(infos[0]["sid"], cert):
                return name_to_rfc4514(cert.subject)
        except _PARSE_ERRORS:
            continue  # a malformed certificate names nobody
    return None


def sid_matches(sid: cms.SignerIdentifier, cert: x509.Certificate) -> bool:
    """Tell whether a SignerInfo sid (issuer+serial or key id) names ``cert``."""
    if sid.name == "subject_key_identifier":
        return bool(cert.key_identifier == sid.chosen.native)
    chosen = sid.chosen
    return bool(
        chosen["serial_number"].native == cert.serial_number
        and chosen["issuer"] == cert.issuer
    )
