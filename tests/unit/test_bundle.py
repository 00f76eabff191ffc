"""Bundles: written atomically in the frozen layout, read safely from hostile input."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import warnings
import zipfile
from pathlib import Path

import pytest

from notary import merkle, record
from notary.bundle import (
    Bundle,
    BundleContent,
    read_bundle,
    write_bundle,
)
from notary.errors import BundleFormatError, NotFoundError
from notary.ers import parse_evidence_record
from notary.tsa.server import BuiltinTSA
from tests.bundlekit import content_of, evidence_of, write_files

FILES = {
    "a.log": b"first line\nsecond line\n",
    "empty.txt": b"",
    "sub/b.log": b"x" * 5000,
    "sub/deeper/c.json": b'{"k": 1}',
}


@pytest.fixture(scope="module")
def tsa(tmp_path_factory: pytest.TempPathFactory) -> BuiltinTSA:
    return BuiltinTSA.open(tmp_path_factory.mktemp("tsa"))


@pytest.fixture(scope="module")
def content(tmp_path_factory: pytest.TempPathFactory, tsa: BuiltinTSA) -> BundleContent:
    evidence = write_files(tmp_path_factory.mktemp("evidence"), FILES)
    previous = {"run": 1, "period": "2026-10", "root": b"\x07" * 32}
    return content_of(evidence_of(evidence), tsa, run_id=2, previous=previous)


@pytest.fixture(scope="module")
def bundle_zip(
    tmp_path_factory: pytest.TempPathFactory, content: BundleContent
) -> Path:
    path = tmp_path_factory.mktemp("out") / "run.zip"
    write_bundle(content, path)
    return path


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about duplicate names
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
            for name, data in members.items():
                archive.writestr(name.split("#")[0], data)
    return path


def _manifest(**changes: object) -> bytes:
    manifest: dict[str, object] = {
        "format": "notary-bundle",
        "version": "1.0",
        "run": {"id": 1},
        "run_record": '{"kind":"run"}',
        "run_proof": "run.json",
        "tree": {
            "algorithm": "sha256",
            "construction": "rfc4998-sorted",
            "root": "00" * 32,
            "leaves": 1,
        },
        "previous": None,
        "items": [],
        "timestamps": [],
    }
    manifest.update(changes)
    return json.dumps(manifest).encode()


# --- round trip -----------------------------------------------------------------------


def test_write_bundle_round_trip_reads_same_content(
    bundle_zip: Path, content: BundleContent
) -> None:
    with read_bundle(bundle_zip) as bundle:
        proofs = [bundle.read_proof(item) for item in bundle.items]
        chain = bundle.read_chain()

    assert bundle.algorithm == content.algorithm
    assert bundle.root == content.root
    assert bundle.leaves == content.leaves == len(FILES) + 2  # chain and run leaves
    assert bundle.is_whole_run
    assert [i.record for i in bundle.items] == [i.record for i in content.items]
    assert [i.content_digest for i in bundle.items] == [
        i.content_digest for i in content.items
    ]
    assert [p.siblings for p in proofs] == [i.siblings for i in content.items]
    assert bundle.previous is not None and bundle.previous.period == "2026-10"
    assert content.previous is not None
    assert chain.siblings == content.previous["siblings"]


def test_write_bundle_layout_is_the_frozen_one(bundle_zip: Path) -> None:
    with zipfile.ZipFile(bundle_zip) as archive:
        names = set(archive.namelist())
        methods = {info.compress_type for info in archive.infolist()}

    assert {"manifest.json", "VERIFY.md", "chain.json", "run.json"} <= names
    assert {"timestamps/builtin-1.tsr", "certs/builtin.pem"} <= names
    assert {f"items/{n:06d}.json" for n in range(1, 5)} <= names
    assert {f"items/{n:06d}.ers" for n in range(1, 5)} <= names
    assert methods == {zipfile.ZIP_DEFLATED}


def test_write_bundle_proof_json_has_the_frozen_keys(bundle_zip: Path) -> None:
    with zipfile.ZipFile(bundle_zip) as archive:
        proof = json.loads(archive.read("items/000001.json"))

    assert list(proof) == [
        "format",
        "version",
        "algorithm",
        "root",
        "path",
        "record",
        "content_digest",
        "record_digest",
        "siblings",
    ]
    assert (proof["format"], proof["version"]) == ("notary-proof", 1)


def test_write_bundle_run_proof_leads_from_the_run_record_to_the_root(
    bundle_zip: Path, content: BundleContent
) -> None:
    with read_bundle(bundle_zip) as bundle:
        proof = bundle.read_run_proof()

    assert bundle.run_record == proof.run_record == content.run_record
    assert bundle.run_proof == "run.json"
    assert record.decode(bundle.run_record)["kind"] == "run"
    leaf = merkle.digest(content.algorithm, proof.run_record)
    assert merkle.root_from_proof(content.algorithm, [leaf], proof.siblings) == (
        content.root
    )


def test_write_bundle_evidence_records_hold_content_then_record(
    bundle_zip: Path, content: BundleContent
) -> None:
    with zipfile.ZipFile(bundle_zip) as archive:
        groups = [
            parse_evidence_record(archive.read(f"items/{item.n:06d}.ers"))[1][0]
            for item in content.items
        ]

    assert groups == [[i.content_digest, i.record_digest] for i in content.items]


def test_write_bundle_without_run_record_raises(
    tmp_path: Path, content: BundleContent
) -> None:
    broken = dataclasses.replace(content, run_record=b'{"kind":"file"}')

    with pytest.raises(BundleFormatError, match="run record has kind 'file'"):
        write_bundle(broken, tmp_path / "b.zip")


@pytest.mark.parametrize("key", ["run_record", "run_proof"])
def test_read_bundle_manifest_without_run_record_raises(
    tmp_path: Path, bundle_zip: Path, key: str
) -> None:
    with zipfile.ZipFile(bundle_zip) as archive:
        manifest = json.loads(archive.read("manifest.json"))
    del manifest[key]
    path = _zip(tmp_path / "b.zip", {"manifest.json": json.dumps(manifest).encode()})

    with pytest.raises(BundleFormatError, match=f"{key} has the wrong type"):
        read_bundle(path)


def test_write_bundle_guide_names_the_openssl_command(
    bundle_zip: Path, content: BundleContent
) -> None:
    with zipfile.ZipFile(bundle_zip) as archive:
        guide = archive.read("VERIFY.md").decode()

    assert (
        f"openssl ts -verify -digest {content.root.hex()} "
        "-in timestamps/builtin-1.tsr -CAfile" in guide
    )
    assert "notary verify" in guide


def test_write_bundle_leaves_no_temporary_file(
    tmp_path: Path, content: BundleContent
) -> None:
    write_bundle(content, tmp_path / "b.zip")

    assert os.listdir(tmp_path) == ["b.zip"]


def test_write_bundle_bad_content_keeps_the_old_bundle(
    tmp_path: Path, content: BundleContent, bundle_zip: Path
) -> None:
    target = tmp_path / "b.zip"
    shutil.copy(bundle_zip, target)
    broken = BundleContent(**{**content.__dict__, "root": b"short"})

    with pytest.raises(BundleFormatError, match="expected 32 bytes, got 5"):
        write_bundle(broken, target)

    assert target.read_bytes() == bundle_zip.read_bytes()
    assert os.listdir(tmp_path) == ["b.zip"]


def test_read_bundle_directory_reads_like_the_zip(
    tmp_path: Path, bundle_zip: Path
) -> None:
    with zipfile.ZipFile(bundle_zip) as archive:
        archive.extractall(tmp_path / "unpacked")

    with (
        read_bundle(tmp_path / "unpacked") as bundle,
        read_bundle(bundle_zip) as zipped,
    ):
        assert bundle.items == zipped.items
        assert bundle.names == zipped.names


def test_read_bundle_certificates_come_from_certs_folder(bundle_zip: Path) -> None:
    with read_bundle(bundle_zip) as bundle:
        certificates = bundle.certificates()

    assert len(certificates) == 2  # the TSA's certificate and its CA


# --- hostile input --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "match"),
    [
        ("../evil.txt", r"unsafe member name '../evil.txt' \(a '..'"),
        ("items/../../evil.txt", "unsafe member name"),
        ("/etc/passwd", r"\(an absolute path\)"),
        ("items\\evil.txt", r"\(a backslash\)"),
        ("C:/evil.txt", r"\(a drive letter\)"),
        ("items//x.json", "empty path component"),
    ],
)
def test_read_bundle_unsafe_member_name_raises(
    tmp_path: Path, name: str, match: str
) -> None:
    path = _zip(tmp_path / "b.zip", {"manifest.json": _manifest(), name: b"x"})

    with pytest.raises(BundleFormatError, match=match):
        read_bundle(path)

    assert sorted(os.listdir(tmp_path)) == ["b.zip"]


def test_read_bundle_duplicate_member_raises(tmp_path: Path) -> None:
    path = _zip(
        tmp_path / "b.zip",
        {"manifest.json": _manifest(), "manifest.json#2": _manifest(version="9.0")},
    )

    with pytest.raises(BundleFormatError, match=r"duplicate member 'manifest\.json'"):
        read_bundle(path)


def test_read_bundle_oversized_member_raises(tmp_path: Path) -> None:
    path = _zip(
        tmp_path / "b.zip", {"manifest.json": _manifest(), "items/big": b"\0" * 100_000}
    )

    with pytest.raises(BundleFormatError, match=r"items/big too large \(at most 4096"):
        read_bundle(path, max_member=4096)


def test_read_bundle_zip_bomb_total_raises(tmp_path: Path) -> None:
    members = {f"pad/{k}": b"\0" * 50_000 for k in range(10)}
    path = _zip(tmp_path / "b.zip", {"manifest.json": _manifest(), **members})

    with pytest.raises(BundleFormatError, match="too large in total"):
        read_bundle(path, max_total=200_000)


def test_read_bundle_member_lying_about_its_size_raises(tmp_path: Path) -> None:
    path = _zip(tmp_path / "b.zip", {"manifest.json": _manifest(), "x": b"\0" * 10_000})
    data = bytearray(path.read_bytes())
    # Shrink the declared size of "x" (second central directory entry, offset 24).
    first = data.find(b"PK\x01\x02")
    central = data.find(b"PK\x01\x02", first + 4)
    data[central + 24 : central + 28] = (100).to_bytes(4, "little")
    path.write_bytes(data)

    with read_bundle(path) as bundle, pytest.raises(BundleFormatError, match="damaged"):
        bundle.read("x")


def test_read_bundle_truncated_zip_raises(tmp_path: Path, bundle_zip: Path) -> None:
    data = bundle_zip.read_bytes()
    path = tmp_path / "cut.zip"
    path.write_bytes(data[: len(data) // 2])

    with pytest.raises(BundleFormatError, match="not a zip file or truncated"):
        read_bundle(path)


def test_read_bundle_not_a_zip_raises(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("just some text\n")

    with pytest.raises(BundleFormatError, match="not a zip file or truncated"):
        read_bundle(path)


def test_read_bundle_missing_path_raises(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="no such file or directory"):
        read_bundle(tmp_path / "absent.zip")


def test_read_bundle_without_manifest_raises(tmp_path: Path) -> None:
    path = _zip(tmp_path / "b.zip", {"VERIFY.md": b"hello"})

    with pytest.raises(BundleFormatError, match=r"no manifest.json \(not a notary"):
        read_bundle(path)


def test_read_bundle_manifest_not_json_raises(tmp_path: Path) -> None:
    path = _zip(tmp_path / "b.zip", {"manifest.json": b"{not json"})

    with pytest.raises(BundleFormatError, match=r"manifest\.json is not valid JSON"):
        read_bundle(path)


def test_read_bundle_manifest_not_an_object_raises(tmp_path: Path) -> None:
    path = _zip(tmp_path / "b.zip", {"manifest.json": b"[1, 2]"})

    with pytest.raises(BundleFormatError, match=r"not a JSON object \(got list\)"):
        read_bundle(path)


def test_read_bundle_newer_major_version_raises(tmp_path: Path) -> None:
    path = _zip(tmp_path / "b.zip", {"manifest.json": _manifest(version="2.0")})

    with pytest.raises(
        BundleFormatError, match=r"version 2.0 is newer than what this notary supports"
    ) as caught:
        read_bundle(path)

    assert caught.value.exit_code == 2
    assert caught.value.hint == "upgrade notary to read this bundle"


def test_read_bundle_newer_minor_version_is_read(tmp_path: Path) -> None:
    path = _zip(
        tmp_path / "b.zip", {"manifest.json": _manifest(version="1.7", future={"x": 1})}
    )

    with read_bundle(path) as bundle:
        assert bundle.version == "1.7"


def test_read_bundle_wrong_format_name_raises(tmp_path: Path) -> None:
    path = _zip(tmp_path / "b.zip", {"manifest.json": _manifest(format="other-bundle")})

    with pytest.raises(
        BundleFormatError, match="expected notary-bundle, got 'other-bundle'"
    ):
        read_bundle(path)


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"version": 1}, "version is not MAJOR.MINOR"),
        ({"items": {"n": 1}}, r"items has the wrong type \(expected list, got dict\)"),
        ({"items": ["x"]}, r"manifest.items\[0\]: expected an object"),
        ({"tree": {"algorithm": "md5"}}, "unsupported algorithm"),
        (
            {"tree": {"algorithm": "sha256", "construction": "rfc4998-sorted"}},
            r"root has the wrong type \(expected str, got nothing\)",
        ),
        (
            {
                "tree": {
                    "algorithm": "sha256",
                    "construction": "rfc4998-sorted",
                    "root": "XYZ",
                    "leaves": 1,
                }
            },
            "expected 64 lowercase hex digits",
        ),
        ({"previous": "yes"}, "expected an object or null"),
    ],
)
def test_read_bundle_manifest_wrong_types_raise(
    tmp_path: Path, changes: dict[str, object], match: str
) -> None:
    path = _zip(tmp_path / "b.zip", {"manifest.json": _manifest(**changes)})

    with pytest.raises(BundleFormatError, match=match):
        read_bundle(path)


def test_read_bundle_item_referring_outside_raises(
    tmp_path: Path, bundle_zip: Path
) -> None:
    with zipfile.ZipFile(bundle_zip) as archive:
        manifest = json.loads(archive.read("manifest.json"))
    manifest["items"][0]["proof"] = "../../etc/passwd"
    path = _zip(tmp_path / "b.zip", {"manifest.json": json.dumps(manifest).encode()})

    with pytest.raises(BundleFormatError, match=r"items\[0\]: unsafe member name"):
        read_bundle(path)


def test_read_bundle_directory_with_symlink_raises(
    tmp_path: Path, bundle_zip: Path
) -> None:
    with zipfile.ZipFile(bundle_zip) as archive:
        archive.extractall(tmp_path / "unpacked")
    (tmp_path / "unpacked" / "items" / "000001.json").unlink()
    (tmp_path / "unpacked" / "items" / "000001.json").symlink_to("/etc/passwd")

    with pytest.raises(BundleFormatError, match="not a regular file"):
        read_bundle(tmp_path / "unpacked")


def test_bundle_read_proof_damaged_json_raises(
    tmp_path: Path, bundle_zip: Path
) -> None:
    with zipfile.ZipFile(bundle_zip) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    members["items/000001.json"] = b'{"format": "notary-proof", "version": 1}'
    path = _zip(tmp_path / "b.zip", members)

    with (
        read_bundle(path) as bundle,
        pytest.raises(BundleFormatError, match="algorithm"),
    ):
        bundle.read_proof(bundle.items[0])


def test_bundle_context_manager_closes_the_zip(bundle_zip: Path) -> None:
    with read_bundle(bundle_zip) as bundle:
        assert isinstance(bundle, Bundle)

    with pytest.raises(BundleFormatError, match="already closed"):
        bundle.read("manifest.json")
