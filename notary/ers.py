"""RFC 4998 evidence records (Evidence Record Syntax, DER) for single items.

FROZEN FORMAT. Each bundle item carries one EvidenceRecord (RFC 4998 §3) with exactly
one ArchiveTimeStampChain holding exactly one ArchiveTimeStamp:

- ``digestAlgorithm`` [0] is always present (the tree's algorithm, NULL parameters);
- ``reducedHashtree`` [2] is the item's reduced hash tree: the first PartialHashtree
  holds the item's data group, ``[content_digest, record_digest]`` in exactly that
  order, each further one holds the one sibling of one level (RFC 4998 §4.2, see
  ``notary.merkle``);
- ``timeStamp`` is the RFC 3161 TimeStampToken (a CMS ContentInfo) whose imprint is the
  tree's root.

A validator hashes the partial hash trees in order: ``h = H(sortcat(*first))``, then
``h = H(sortcat(h, sibling))`` per further tree; ``h`` must equal the token's imprint.
An item's content alone is present when its digest is one of the first tree's values
(Bouncy Castle's ``ERSEvidenceRecord.validatePresent`` checks a data object so). The
hash does not depend on the order (``sortcat``), but the order says which value is
what: the first is the content, the second the item's public metadata record, so
``notary verify`` refuses a file that is that record when it is offered as the
content.

Tagged fields use IMPLICIT tags, as in the RFC's ASN.1 module. Reading accepts records
without ``digestAlgorithm`` (the token's imprint algorithm applies then, RFC 4998 §4.1)
but rejects renewed records (several timestamps or chains): notary never writes them.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from asn1crypto import algos, cms, core

from notary.errors import EvidenceRecordError

ERS_VERSION = 1
ALGORITHMS = {"sha256": 32, "sha384": 48, "sha512": 64}


class PartialHashtree(core.SequenceOf):  # type: ignore[misc]
    _child_spec = core.OctetString


class ReducedHashtree(core.SequenceOf):  # type: ignore[misc]
    _child_spec = PartialHashtree


class ArchiveTimeStamp(core.Sequence):  # type: ignore[misc]
    _fields = [  # noqa: RUF012 - asn1crypto's declaration style
        ("digest_algorithm", algos.DigestAlgorithm, {"implicit": 0, "optional": True}),
        ("attributes", cms.CMSAttributes, {"implicit": 1, "optional": True}),
        ("reduced_hashtree", ReducedHashtree, {"implicit": 2, "optional": True}),
        ("time_stamp", cms.ContentInfo),
    ]


class ArchiveTimeStampChain(core.SequenceOf):  # type: ignore[misc]
    _child_spec = ArchiveTimeStamp


class ArchiveTimeStampSequence(core.SequenceOf):  # type: ignore[misc]
    _child_spec = ArchiveTimeStampChain


class DigestAlgorithms(core.SequenceOf):  # type: ignore[misc]
    _child_spec = algos.DigestAlgorithm


class CryptoInfos(core.SequenceOf):  # type: ignore[misc]
    _child_spec = cms.CMSAttribute


class EncryptionInfo(core.Sequence):  # type: ignore[misc]
    _fields = [  # noqa: RUF012 - asn1crypto's declaration style
        ("encryption_info_type", core.ObjectIdentifier),
        ("encryption_info_value", core.Any),
    ]


class EvidenceRecord(core.Sequence):  # type: ignore[misc]
    _fields = [  # noqa: RUF012 - asn1crypto's declaration style
        ("version", core.Integer),
        ("digest_algorithms", DigestAlgorithms),
        ("crypto_infos", CryptoInfos, {"implicit": 0, "optional": True}),
        ("encryption_info", EncryptionInfo, {"implicit": 1, "optional": True}),
        ("archive_time_stamp_sequence", ArchiveTimeStampSequence),
    ]


# TODO: one ArchiveTimeStamp per record and no renewal (RFC 4998 section 5): records
# are not re-stamped before their algorithms weaken, and renewed records are refused.
def evidence_record(
    algorithm: str,
    group: Sequence[bytes],
    siblings: Sequence[bytes],
    token_der: bytes,
) -> bytes:
    """Return the DER EvidenceRecord of one item.

    ``group`` is the item's data group digests, written in the order given; for an
    item that is ``[content_digest, record_digest]`` (content first, always),
    ``siblings`` its proof, ``token_der`` the DER TimeStampToken (ContentInfo, not the
    TimeStampResp) over the root, embedded byte for byte. Raises EvidenceRecordError
    for an unsupported algorithm, digests of the wrong length or a token that does not
    parse.
    """
    _check_digests(algorithm, [*group, *siblings])
    _check_token(token_der)
    # NOTE: encoded by hand (the structure is fixed and small): building it with
    # asn1crypto costs ~10 ms per item, too slow for bundles of 100,000s of items.
    # tests/unit/test_ers.py checks that both encodings are identical.
    algorithm_id = _algorithm_identifier(algorithm)
    trees = [list(group), *([sibling] for sibling in siblings)]
    reduced = b"".join(_der(0x30, b"".join(_der(0x04, d) for d in t)) for t in trees)
    archive_time_stamp = _der(
        0x30,
        _der(0xA0, algorithm_id[2:]) + _der(0xA2, reduced) + token_der,
    )
    chain_sequence = _der(0x30, _der(0x30, archive_time_stamp))
    version = _der(0x02, bytes([ERS_VERSION]))
    return _der(0x30, version + _der(0x30, algorithm_id) + chain_sequence)


def _der(tag: int, content: bytes) -> bytes:
    """Return one DER TLV (X.690 §8.1: short or long definite length)."""
    size = len(content)
    if size < 0x80:
        return bytes([tag, size]) + content
    length = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(length)]) + length + content


@functools.lru_cache(maxsize=8)
def _algorithm_identifier(algorithm: str) -> bytes:
    """Return the DER AlgorithmIdentifier of a digest (NULL parameters, as OpenSSL)."""
    return bytes(algos.DigestAlgorithm({"algorithm": algorithm}).dump())


@functools.lru_cache(maxsize=8)
def _check_token(token_der: bytes) -> None:
    _load_content_info(token_der)


def parse_evidence_record(der: bytes) -> tuple[str, list[list[bytes]], bytes]:
    """Parse a DER EvidenceRecord written by `evidence_record` (or an equivalent one).

    Returns ``(algorithm, partial_trees, token_der)``: the hashlib name of the tree's
    digest algorithm, the reduced hash tree (a list of partial hash trees, each a list
    of digests) and the DER TimeStampToken. Parsing only: nothing is verified, and the
    token is only checked to be a CMS SignedData. Raises EvidenceRecordError with one
    line when the bytes are not such a record.
    """
    try:
        record = _load_record(der)
        archive_time_stamp = _only_archive_time_stamp(record)
        token_der = _token_der(archive_time_stamp)
        algorithm = _record_algorithm(archive_time_stamp, token_der)
        trees = _partial_trees(archive_time_stamp)
    except (
        ValueError,
        TypeError,
        KeyError,
        IndexError,
        OverflowError,
        RecursionError,
    ) as exc:
        raise EvidenceRecordError(
            f"evidence record: not a DER EvidenceRecord ({exc})", reason=str(exc)
        ) from exc
    _check_digests(algorithm, [digest for tree in trees for digest in tree])
    return algorithm, trees, token_der


def _load_record(der: bytes) -> Any:
    record = EvidenceRecord.load(der, strict=True)
    version = record["version"].native
    if version != ERS_VERSION:
        raise EvidenceRecordError(
            f"evidence record: unsupported version (expected 1, got {version})",
            expected=ERS_VERSION,
            actual=version,
        )
    return record


def _only_archive_time_stamp(record: Any) -> Any:
    chains = record["archive_time_stamp_sequence"]
    counts = [len(chain) for chain in chains]
    if counts != [1]:
        raise EvidenceRecordError(
            "evidence record: renewed or empty records are not supported "
            f"(expected one chain of one archive timestamp, got chains of {counts})",
            chains=counts,
        )
    return chains[0][0]


def _token_der(archive_time_stamp: Any) -> bytes:
    token = archive_time_stamp["time_stamp"]
    if token["content_type"].native != "signed_data":
        raise EvidenceRecordError(
            "evidence record: timestamp is not a CMS SignedData "
            f"(got {token['content_type'].native})",
            content_type=token["content_type"].native,
        )
    return bytes(token.dump())


def _record_algorithm(archive_time_stamp: Any, token_der: bytes) -> str:
    field = archive_time_stamp["digest_algorithm"]
    if field.native is not None:
        name = str(field["algorithm"].native)
    else:
        name = _imprint_algorithm(token_der)
    if name not in ALGORITHMS:
        raise EvidenceRecordError(
            f"evidence record: unsupported digest algorithm (expected one of "
            f"{', '.join(ALGORITHMS)}, got {name})",
            algorithm=name,
        )
    return name


def _imprint_algorithm(token_der: bytes) -> str:
    """Return the TSTInfo imprint's algorithm (RFC 4998 §4.1 default)."""
    try:
        signed_data = cms.ContentInfo.load(token_der)["content"]
        tst_info = signed_data["encap_content_info"]["content"].parsed
        return str(tst_info["message_imprint"]["hash_algorithm"]["algorithm"].native)
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise EvidenceRecordError(
            f"evidence record: timestamp token does not parse ({exc})", reason=str(exc)
        ) from exc


def _partial_trees(archive_time_stamp: Any) -> list[list[bytes]]:
    reduced = archive_time_stamp["reduced_hashtree"]
    if reduced.native is None:
        raise EvidenceRecordError("evidence record: reduced hash tree is absent")
    trees = [[bytes(value.native) for value in tree] for tree in reduced]
    if not trees or any(not tree for tree in trees):
        raise EvidenceRecordError("evidence record: empty partial hash tree")
    return trees


def _load_content_info(token_der: bytes) -> Any:
    try:
        token = cms.ContentInfo.load(token_der, strict=True)
        content_type = token["content_type"].native
    except (ValueError, TypeError) as exc:
        raise EvidenceRecordError(
            f"evidence record: timestamp token does not parse ({exc})", reason=str(exc)
        ) from exc
    if content_type != "signed_data":
        raise EvidenceRecordError(
            "evidence record: timestamp token is not a CMS SignedData "
            f"(got {content_type})",
            content_type=content_type,
        )
    return token


def _check_digests(algorithm: str, digests: Sequence[bytes]) -> None:
    size = ALGORITHMS.get(algorithm)
    if size is None:
        raise EvidenceRecordError(
            f"evidence record: unsupported digest algorithm (expected one of "
            f"{', '.join(ALGORITHMS)}, got {algorithm})",
            algorithm=algorithm,
        )
    for digest in digests:
        if len(digest) != size:
            raise EvidenceRecordError(
                f"evidence record: digest of wrong length for {algorithm} "
                f"(expected {size} bytes, got {len(digest)})",
                expected=size,
                actual=len(digest),
            )
