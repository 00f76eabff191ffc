"""RFC 4998 evidence records: DER round trip and the structure validators expect."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from asn1crypto import parser
from asn1crypto.cms import ContentInfo

from notary import merkle
from notary.errors import EvidenceRecordError
from notary.ers import (
    ArchiveTimeStamp,
    EvidenceRecord,
    evidence_record,
    parse_evidence_record,
)
from notary.tsa.server import BuiltinTSA
from notary.tsa.token import load_token
from tests.bundlekit import timestamp


@pytest.fixture(scope="module")
def tsa(tmp_path_factory: pytest.TempPathFactory) -> BuiltinTSA:
    return BuiltinTSA.open(tmp_path_factory.mktemp("tsa"))


def _proof(algorithm: str) -> tuple[list[bytes], list[bytes], bytes]:
    """Return (group, siblings, root) of item 0 in a tree of five items."""
    pairs = [
        (
            merkle.digest(algorithm, b"content %d" % k),
            merkle.digest(algorithm, b"r%d" % k),
        )
        for k in range(5)
    ]
    tree = merkle.HashTree(algorithm, merkle.leaf_hashes(algorithm, pairs))
    group = list(pairs[0])
    return group, tree.proof(merkle.leaf_hash(algorithm, *group)), tree.root


def _record(tsa: BuiltinTSA, algorithm: str = "sha256") -> tuple[bytes, list[bytes]]:
    group, siblings, root = _proof(algorithm)
    token = load_token(timestamp(tsa, algorithm, root))
    return evidence_record(algorithm, group, siblings, token), [*group, *siblings]


@pytest.mark.parametrize("algorithm", ["sha256", "sha384", "sha512"])
def test_evidence_record_round_trip_returns_its_parts(
    tsa: BuiltinTSA, algorithm: str
) -> None:
    group, siblings, root = _proof(algorithm)
    token = load_token(timestamp(tsa, algorithm, root))

    der = evidence_record(algorithm, group, siblings, token)
    parsed = parse_evidence_record(der)

    assert parsed == (algorithm, [group, *([s] for s in siblings)], token)


def test_evidence_record_structure_is_one_chain_of_one_archive_timestamp(
    tsa: BuiltinTSA,
) -> None:
    der, _ = _record(tsa)

    record = EvidenceRecord.load(der)
    chains = record["archive_time_stamp_sequence"]
    ats = chains[0][0]

    assert record["version"].native == 1
    assert [a["algorithm"].native for a in record["digest_algorithms"]] == ["sha256"]
    assert record["crypto_infos"].native is None
    assert len(chains) == 1 and len(chains[0]) == 1
    assert ats["digest_algorithm"]["algorithm"].native == "sha256"
    assert ats["digest_algorithm"]["parameters"].dump() == b"\x05\x00"
    assert ats["time_stamp"]["content_type"].native == "signed_data"


def test_evidence_record_encoding_equals_asn1crypto_encoding(tsa: BuiltinTSA) -> None:
    group, siblings, root = _proof("sha512")
    token = load_token(timestamp(tsa, "sha512", root))
    algorithm = {"algorithm": "sha512"}
    expected = EvidenceRecord(
        {
            "version": 1,
            "digest_algorithms": [algorithm],
            "archive_time_stamp_sequence": [
                [
                    ArchiveTimeStamp(
                        {
                            "digest_algorithm": algorithm,
                            "reduced_hashtree": [group, *([s] for s in siblings)],
                            "time_stamp": ContentInfo.load(token),
                        }
                    )
                ]
            ],
        }
    )

    der = evidence_record("sha512", group, siblings, token)

    assert der == expected.dump()


def test_evidence_record_tags_are_implicit_as_in_rfc4998(tsa: BuiltinTSA) -> None:
    der, _ = _record(tsa)

    ats = EvidenceRecord.load(der)["archive_time_stamp_sequence"][0][0]

    # [0] IMPLICIT AlgorithmIdentifier, [2] IMPLICIT SEQUENCE OF, then a ContentInfo.
    assert _child_tags(ats.dump()) == [0xA0, 0xA2, 0x30]


def _child_tags(der: bytes) -> list[int]:
    """Return the identifier octet of each element inside a DER SEQUENCE."""
    contents = parser.parse(der)[4]
    tags, position = [], 0
    while position < len(contents):
        tags.append(contents[position])
        position += parser.peek(contents[position:])
    return tags


def test_evidence_record_first_partial_tree_holds_the_group(tsa: BuiltinTSA) -> None:
    der, digests = _record(tsa)

    _, trees, _ = parse_evidence_record(der)

    assert len(trees[0]) == 2
    assert [d for tree in trees for d in tree] == digests
    assert all(len(tree) == 1 for tree in trees[1:])


def test_parse_evidence_record_without_digest_algorithm_uses_imprint_algorithm(
    tsa: BuiltinTSA,
) -> None:
    der, _ = _record(tsa, "sha384")
    record = EvidenceRecord.load(der)
    ats = record["archive_time_stamp_sequence"][0][0]
    bare = ArchiveTimeStamp(
        {"reduced_hashtree": ats["reduced_hashtree"], "time_stamp": ats["time_stamp"]}
    )
    record["archive_time_stamp_sequence"] = [[bare]]

    algorithm, _, _ = parse_evidence_record(record.dump())

    assert algorithm == "sha384"


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"", "not a DER EvidenceRecord"),
        (b"garbage", "not a DER EvidenceRecord"),
        (b"\x30\x03\x02\x01\x01", "not a DER EvidenceRecord"),
    ],
)
def test_parse_evidence_record_garbage_raises(data: bytes, match: str) -> None:
    with pytest.raises(EvidenceRecordError, match=match):
        parse_evidence_record(data)


def test_parse_evidence_record_trailing_bytes_raises(tsa: BuiltinTSA) -> None:
    der, _ = _record(tsa)

    with pytest.raises(EvidenceRecordError, match="not a DER EvidenceRecord"):
        parse_evidence_record(der + b"\x00")


def test_parse_evidence_record_version_2_raises(tsa: BuiltinTSA) -> None:
    der, _ = _record(tsa)
    record = EvidenceRecord.load(der)
    record["version"] = 2

    with pytest.raises(EvidenceRecordError, match="expected 1, got 2"):
        parse_evidence_record(record.dump())


def test_parse_evidence_record_renewed_record_raises(tsa: BuiltinTSA) -> None:
    der, _ = _record(tsa)
    record = EvidenceRecord.load(der)
    ats = record["archive_time_stamp_sequence"][0][0]
    record["archive_time_stamp_sequence"] = [[ats, ats]]

    with pytest.raises(EvidenceRecordError, match="renewed or empty"):
        parse_evidence_record(record.dump())


def test_evidence_record_wrong_digest_length_raises(tsa: BuiltinTSA) -> None:
    group, _, root = _proof("sha256")
    token = load_token(timestamp(tsa, "sha256", root))

    with pytest.raises(EvidenceRecordError, match="expected 32 bytes, got 20"):
        evidence_record("sha256", group, [hashlib.sha1(b"x").digest()], token)


def test_evidence_record_unknown_algorithm_raises(tsa: BuiltinTSA) -> None:
    with pytest.raises(EvidenceRecordError, match="got md5"):
        evidence_record("md5", [b"\x00" * 16], [], b"")


def test_evidence_record_token_not_signed_data_raises(tmp_path: Path) -> None:
    group, siblings, _ = _proof("sha256")

    with pytest.raises(EvidenceRecordError, match="does not parse"):
        evidence_record("sha256", group, siblings, b"\x30\x00")
