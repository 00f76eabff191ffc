"""The verifier against hostile bundles and hostile names: what is shown as proven
must be proven by the tree, never by the manifest's word."""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from notary import record
from notary.bundle import write_bundle
from notary.cli import main
from notary.errors import EvidenceRecordError
from notary.tsa.server import BuiltinTSA
from notary.tsa.token import load_certificates
from notary.verdict import Check, Verdict
from notary.verify import (
    METADATA_NOT_CONTENT,
    NO_PATH_DETAIL,
    BundleReport,
    parse_run_record,
    verify_bundle,
    verify_bundles,
)
from tests.bundlekit import (
    Evidence,
    content_of,
    evidence_of,
    make_bundle,
    run_record_of,
    write_files,
)

FILES = {
    "a.log": b"2026-11-01 login ok\n",
    "b.log": b"2026-11-02 transfer 100\n" * 20,
    "sub/c.json": b'{"k": 1}',
    "z.bin": bytes(range(256)),
}

Manifest = dict[str, Any]


@pytest.fixture(scope="module")
def tsa(tmp_path_factory: pytest.TempPathFactory) -> BuiltinTSA:
    return BuiltinTSA.open(tmp_path_factory.mktemp("tsa"))


@pytest.fixture(scope="module")
def roots(tsa: BuiltinTSA) -> list[x509.Certificate]:
    return load_certificates(tsa.ca_path)


@pytest.fixture
def evidence(tmp_path: Path) -> Path:
    return write_files(tmp_path / "evidence", FILES)


@pytest.fixture
def bundle(tmp_path: Path, evidence: Path, tsa: BuiltinTSA) -> Path:
    make_bundle(evidence, tsa, tmp_path / "run.zip")
    return tmp_path / "run.zip"


def _members(bundle: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(bundle) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def _write_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def _tamper(
    bundle: Path, edit: Callable[[Manifest], None], drop: tuple[str, ...] = ()
) -> Path:
    """Return a copy of ``bundle`` with its manifest edited and ``drop`` removed."""
    members = _members(bundle)
    manifest = json.loads(members["manifest.json"])
    edit(manifest)
    members["manifest.json"] = json.dumps(manifest).encode()
    for name in drop:
        del members[name]
    return _write_zip(bundle.with_name("tampered.zip"), members)


def _by_item(report: BundleReport, name: str) -> dict[str, Check]:
    return {str(c.item): c for c in report.checks if c.name == name}


def _failed(report: BundleReport) -> list[Check]:
    return [c for c in report.checks if c.ok is False]


# --- S1: with --dir, valid means every file under DIR is proven -----------------------


def test_verify_dir_item_dropped_listed_as_skipped_and_tampered_not_valid(
    bundle: Path, evidence: Path, roots: list[x509.Certificate]
) -> None:
    def edit(manifest: Manifest) -> None:
        manifest["items"] = [i for i in manifest["items"] if i["path"] != "a.log"]
        manifest["skipped"] = [{"path": "a.log", "reason": "special file"}]

    tampered = _tamper(bundle, edit)
    (evidence / "a.log").write_bytes(b"2026-11-01 login FORGED\n")
    (evidence / "planted.txt").write_bytes(b"planted")

    report = verify_bundle(tampered, directory=evidence, trust_roots=roots)

    assert report.verdict is not Verdict.VALID
    extra = _by_item(report, "extra file")
    assert extra["a.log"].ok is None
    assert extra["a.log"].detail == (
        "listed as skipped at attestation: its content is not attested"
    )
    assert extra["planted.txt"].ok is None
    assert extra["planted.txt"].detail.startswith("not covered by this bundle")
    assert report.info["whole_run"] is False


def test_verify_dir_whole_bundle_file_listed_as_error_indeterminate(
    bundle: Path, evidence: Path, roots: list[x509.Certificate]
) -> None:
    def edit(manifest: Manifest) -> None:
        manifest["errors"] = [{"path": "planted.txt", "error": "permission denied"}]

    tampered = _tamper(bundle, edit)
    (evidence / "planted.txt").write_bytes(b"planted")

    report = verify_bundle(tampered, directory=evidence, trust_roots=roots)

    assert report.verdict is Verdict.INDETERMINATE
    assert _by_item(report, "extra file")["planted.txt"].detail == (
        "listed as unreadable at attestation: its content is not attested"
    )


def test_verify_dir_whole_bundle_planted_file_invalid(
    bundle: Path, evidence: Path, roots: list[x509.Certificate]
) -> None:
    (evidence / "planted.txt").write_bytes(b"planted")

    report = verify_bundle(bundle, directory=evidence, trust_roots=roots)

    assert report.verdict is Verdict.INVALID
    assert report.failing_items == ["planted.txt"]
    assert "extra file" in _failed(report)[0].detail


def test_verify_dir_manifest_inflating_leaves_to_look_partial_invalid(
    bundle: Path, evidence: Path, roots: list[x509.Certificate]
) -> None:
    def edit(manifest: Manifest) -> None:
        manifest["tree"]["leaves"] += 5

    tampered = _tamper(bundle, edit)
    (evidence / "planted.txt").write_bytes(b"planted")

    report = verify_bundle(tampered, directory=evidence, trust_roots=roots)

    assert report.verdict is Verdict.INVALID
    tree = next(c for c in report.checks if c.name == "tree")
    assert tree.ok is False
    assert tree.detail == "manifest tree.leaves is 10 but the run record gives 5"
    assert _by_item(report, "extra file")["planted.txt"].ok is False


def test_verify_dir_partial_bundle_extra_files_undecided(
    tmp_path: Path, evidence: Path, tsa: BuiltinTSA, roots: list[x509.Certificate]
) -> None:
    content = content_of(evidence_of(evidence), tsa)
    content.items = [item for item in content.items if item.path == "a.log"]
    write_bundle(content, tmp_path / "one.zip")

    report = verify_bundle(tmp_path / "one.zip", directory=evidence, trust_roots=roots)

    assert report.verdict is Verdict.INDETERMINATE
    extras = _by_item(report, "extra file")
    assert sorted(extras) == ["b.log", "sub/c.json", "z.bin"]
    assert extras["b.log"].detail == (
        "not covered by this bundle (it holds 1 of 4 items of the run)"
    )
    assert not any(c.facts.get("advisory") for c in extras.values())


# --- S3: stream, period, chain and size come from the run record ----------------------


def test_verify_bundle_relabelled_period_invalid_naming_the_field(
    bundle: Path, roots: list[x509.Certificate]
) -> None:
    def edit(manifest: Manifest) -> None:
        manifest["run"]["period"] = "2026-10"

    tampered = _tamper(bundle, edit)

    report = verify_bundle(tampered, trust_roots=roots)

    assert report.verdict is Verdict.INVALID
    [lie] = _failed(report)
    assert (lie.name, lie.facts["field"]) == ("run record", "run.period")
    assert lie.detail == (
        "manifest run.period is '2026-10' but the run record says '2026-11'"
    )
    assert report.info["period"] == "2026-11"


def test_verify_bundle_tampered_run_proof_invalid_and_header_unverified(
    bundle: Path, roots: list[x509.Certificate], capsys: pytest.CaptureFixture[str]
) -> None:
    members = _members(bundle)
    proof = json.loads(members["run.json"])
    proof["siblings"][0] = "00" * 32
    members["run.json"] = json.dumps(proof).encode()
    tampered = _write_zip(bundle.with_name("t.zip"), members)

    report = verify_bundle(tampered, trust_roots=roots)
    code = main(["verify", str(tampered), "--trust-root", str(_ca(roots, bundle))])

    out = capsys.readouterr().out.splitlines()
    assert report.verdict is Verdict.INVALID
    assert report.info["run_record_verified"] is False
    assert next(c for c in report.checks if c.name == "run record").ok is False
    assert code == 1
    header = next(line for line in out if line.startswith("bundle "))
    assert header.startswith(f"bundle {tampered}: UNVERIFIED stream logs")


def _ca(roots: list[x509.Certificate], bundle: Path) -> Path:
    from cryptography.hazmat.primitives.serialization import Encoding

    path = bundle.with_name("ca.pem")
    path.write_bytes(b"".join(c.public_bytes(Encoding.PEM) for c in roots))
    return path


def test_verify_bundle_edited_run_record_text_invalid(
    bundle: Path, roots: list[x509.Certificate]
) -> None:
    def edit(manifest: Manifest) -> None:
        manifest["run_record"] = manifest["run_record"].replace(
            '"items":4', '"items":9'
        )

    report = verify_bundle(_tamper(bundle, edit), trust_roots=roots)

    assert report.verdict is Verdict.INVALID
    assert report.info["run_record_verified"] is False


def _chain(tmp_path: Path, tsa: BuiltinTSA, periods: list[str]) -> dict[str, Path]:
    bundles: dict[str, Path] = {}
    previous = None
    for run_id, period in enumerate(periods, start=1):
        evidence = write_files(tmp_path / period, {"log.txt": period.encode()})
        content = content_of(
            evidence_of(evidence), tsa, period=period, run_id=run_id, previous=previous
        )
        bundles[period] = tmp_path / f"{period}.zip"
        write_bundle(content, bundles[period])
        previous = {"run": run_id, "period": period, "root": content.root}
    return bundles


def test_verify_bundle_removed_chain_invalid(
    tmp_path: Path, tsa: BuiltinTSA, roots: list[x509.Certificate]
) -> None:
    chained = _chain(tmp_path, tsa, ["2026-09", "2026-10"])["2026-10"]

    def edit(manifest: Manifest) -> None:
        manifest["previous"] = None

    report = verify_bundle(_tamper(chained, edit, ("chain.json",)), trust_roots=roots)

    assert report.verdict is Verdict.INVALID
    [failed] = _failed(report)
    assert failed.name == "previous run"
    assert "links to period 2026-09" in failed.detail
    assert "no chain proof" in failed.detail


def test_verify_bundles_relabelled_bundle_placed_by_its_run_record(
    tmp_path: Path, tsa: BuiltinTSA, roots: list[x509.Certificate]
) -> None:
    bundles = _chain(tmp_path, tsa, ["2026-08", "2026-09", "2026-11"])

    def edit(manifest: Manifest) -> None:
        manifest["run"]["period"] = "2026-10"

    relabelled = _tamper(bundles["2026-09"], edit)

    report = verify_bundles(
        [bundles["2026-08"], relabelled, bundles["2026-11"]], trust_roots=roots
    )

    assert report.verdict is Verdict.INVALID
    assert [r.info["period"] for r in report.bundles] == [
        "2026-08",
        "2026-09",
        "2026-11",
    ]
    failed = [c for c in report.checks if c.ok is False]
    assert "no bundle for period 2026-10 (between 2026-09 and 2026-11)" in [
        c.detail for c in failed
    ]
    [lie] = [c for c in failed if c.name == "bundle"]
    assert lie.detail.startswith(f"{relabelled} (logs 2026-09): invalid")


# --- S6: status, size and tokens from authenticated data ------------------------------


def test_verify_bundle_unstable_from_the_record_warns(
    tmp_path: Path, evidence: Path, tsa: BuiltinTSA, roots: list[x509.Certificate]
) -> None:
    content = content_of(evidence_of(evidence), tsa, unstable=frozenset({b"a.log"}))
    write_bundle(content, tmp_path / "u.zip")

    report = verify_bundle(tmp_path / "u.zip", directory=evidence, trust_roots=roots)

    assert report.verdict is Verdict.VALID
    flagged = [c for c in report.checks if c.warning]
    assert [(c.name, c.item) for c in flagged] == [("item record", "a.log")]
    assert "changing while it was read" in flagged[0].detail


@pytest.mark.parametrize(
    ("unstable", "claimed", "expected"),
    [(frozenset(), "unstable", "'ok'"), (frozenset({b"a.log"}), "ok", "'unstable'")],
)
def test_verify_bundle_manifest_status_contradicting_record_invalid(
    tmp_path: Path,
    evidence: Path,
    tsa: BuiltinTSA,
    roots: list[x509.Certificate],
    unstable: frozenset[bytes],
    claimed: str,
    expected: str,
) -> None:
    content = content_of(evidence_of(evidence), tsa, unstable=unstable)
    content.items[0].status = claimed
    write_bundle(content, tmp_path / "s.zip")

    report = verify_bundle(tmp_path / "s.zip", trust_roots=roots)

    assert report.verdict is Verdict.INVALID
    [failed] = _failed(report)
    assert failed.detail == (
        f"manifest status '{claimed}' contradicts the record (expected {expected})"
    )


def test_verify_bundle_fewer_tokens_than_sealed_with_is_advisory(
    tmp_path: Path, evidence: Path, tsa: BuiltinTSA, roots: list[x509.Certificate]
) -> None:
    content = content_of(evidence_of(evidence), tsa, min_tokens=2)
    write_bundle(content, tmp_path / "t.zip")

    report = verify_bundle(tmp_path / "t.zip", trust_roots=roots)

    assert report.verdict is Verdict.VALID
    count = next(c for c in report.checks if c.name == "token count")
    assert (count.ok, count.facts.get("advisory")) == (False, True)
    assert count.detail.startswith(
        "bundle holds fewer tokens than the run was sealed with"
    )


# --- S4: evidence records -------------------------------------------------------------


def test_verify_evidence_record_metadata_record_as_file_invalid(
    bundle: Path, tmp_path: Path, roots: list[x509.Certificate]
) -> None:
    members = _members(bundle)
    ers = tmp_path / "a.log.ers"
    ers.write_bytes(members["items/000001.ers"])
    metadata = tmp_path / "a.log.record"
    metadata.write_bytes(json.loads(members["items/000001.json"])["record"].encode())

    report = verify_bundle(ers, files=[(metadata, None)], trust_roots=roots)

    assert report.verdict is Verdict.INVALID
    [failed] = _failed(report)
    assert failed.detail == METADATA_NOT_CONTENT


def test_verify_evidence_record_garbage_says_not_an_evidence_record(
    tmp_path: Path,
) -> None:
    junk = tmp_path / "item.ers"
    junk.write_bytes(b"PK garbage, not DER")

    with pytest.raises(EvidenceRecordError, match="not an evidence record"):
        verify_bundle(junk)


# --- S2 and the command line ----------------------------------------------------------


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_verify_control_characters_in_names_escaped(
    tmp_path: Path, tsa: BuiltinTSA, capsys: pytest.CaptureFixture[str]
) -> None:
    hostile = "x\r\x1b[2Kverdict: VALID"
    evidence = write_files(
        tmp_path / "ev", {hostile: b"evidence", "r\u202egol.txt": b"rtl"}
    )
    make_bundle(evidence, tsa, tmp_path / "b.zip")
    (evidence / hostile).write_bytes(b"tampered")
    (evidence / "r\u202egol.txt").write_bytes(b"tampered too")

    code, out, _ = _cli(
        capsys,
        "verify",
        str(tmp_path / "b.zip"),
        "--dir",
        str(evidence),
        "--trust-root",
        str(tsa.ca_path),
    )

    assert code == 1
    assert not any(ch in out for ch in "\r\x1b\u202e")
    assert "x\\x0d\\x1b[2Kverdict: VALID" in out
    assert "r\\u202egol.txt" in out
    verdict = next(line for line in out.splitlines() if line.startswith("verdict:"))
    assert verdict == (
        "verdict: INVALID; failing: r\\u202egol.txt, x\\x0d\\x1b[2Kverdict: VALID"
    )


def test_cli_verify_json_keeps_names_exact(
    tmp_path: Path, tsa: BuiltinTSA, capsys: pytest.CaptureFixture[str]
) -> None:
    hostile = "x\r\x1b[2Ky"
    evidence = write_files(tmp_path / "ev", {hostile: b"evidence"})
    make_bundle(evidence, tsa, tmp_path / "b.zip")

    _, out, _ = _cli(capsys, "verify", str(tmp_path / "b.zip"), "--json")

    document = json.loads(out)
    assert hostile in {c.get("item") for c in document["checks"]}


def test_cli_verify_json_missing_bundle_one_document(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _cli(capsys, "verify", str(tmp_path / "none.zip"), "--json")

    document = json.loads(out)
    assert code == 2
    assert document["verdict"] is None
    assert document["exit_code"] == 2
    assert "no such file" in document["error"]
    assert len(err.splitlines()) == 1


def test_cli_verify_file_summary_says_how_many_contents_were_checked(
    tmp_path: Path, tsa: BuiltinTSA, capsys: pytest.CaptureFixture[str]
) -> None:
    files = {f"logs/{k:03d}.log": b"line %d\n" % k for k in range(31)}
    evidence = write_files(tmp_path / "many", files)
    make_bundle(evidence, tsa, tmp_path / "many.zip")

    code, out, _ = _cli(
        capsys,
        "verify",
        str(tmp_path / "many.zip"),
        "--file",
        str(evidence / "logs" / "007.log"),
        "--trust-root",
        str(tsa.ca_path),
    )

    lines = out.splitlines()
    assert code == 0
    assert (
        "  items: 31 in this bundle; content checked for 1 of them; record and proof "
        "only for the other 30"
    ) in lines
    assert (
        "  ok    item checks passed: record 31, content 1, proof 31, evidence record 31"
    ) in lines
    assert not any("31 items: content" in line for line in lines)


def test_verify_bundle_file_that_is_a_symlink_invalid_like_dir(
    bundle: Path, evidence: Path, roots: list[x509.Certificate]
) -> None:
    link = evidence.parent / "link-to-z"
    link.symlink_to(evidence / "z.bin")
    os.replace(evidence / "z.bin", evidence.parent / "z-moved.bin")
    (evidence / "z.bin").symlink_to(evidence.parent / "z-moved.bin")

    by_file = verify_bundle(bundle, files=[(link, "z.bin")], trust_roots=roots)
    by_dir = verify_bundle(bundle, directory=evidence, trust_roots=roots)

    for report in (by_file, by_dir):
        assert report.verdict is Verdict.INVALID
        assert _by_item(report, "item content")["z.bin"].detail == (
            "changed: is a symlink (expected a file)"
        )


def test_cli_verify_foreign_trust_root_says_not_proven_by_that_tsa(
    bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = BuiltinTSA.open(tmp_path / "other-tsa")

    code, out, _ = _cli(
        capsys, "verify", str(bundle), "--trust-root", str(other.ca_path)
    )

    assert code == 4
    verdict = next(line for line in out.splitlines() if line.startswith("verdict:"))
    assert verdict.startswith("verdict: INDETERMINATE")
    assert verdict.endswith(f"; {NO_PATH_DETAIL}")


def test_verify_dir_item_named_outside_the_directory_not_read(
    tmp_path: Path, tsa: BuiltinTSA, roots: list[x509.Certificate]
) -> None:
    secret = b"outside the evidence directory"
    fields: dict[str, record.Value] = {"v": 1, "kind": "file", "salt": "00" * 16}
    fields.update(path="../secret.txt", size=len(secret), mtime_ns=1)
    outside = Evidence(b"../secret.txt", secret, record.encode(fields))
    write_bundle(content_of([outside], tsa), tmp_path / "b.zip")
    (tmp_path / "secret.txt").write_bytes(secret)
    (tmp_path / "evidence").mkdir()

    report = verify_bundle(
        tmp_path / "b.zip", directory=tmp_path / "evidence", trust_roots=roots
    )

    assert report.verdict is Verdict.INVALID
    content = _by_item(report, "item content")["../secret.txt"]
    assert content.detail.startswith("unsafe item name")


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"kind": "file"}, "not a run record"),
        ({"items": -1}, "items is negative"),
        ({"items": True}, "items is not a int"),
        ({"stream": None}, "stream is not a str"),
        ({"previous_root": "ab"}, "previous_root is not a sha256 digest"),
        ({"previous_root": "zz"}, "previous_root is not hex"),
    ],
)
def test_parse_run_record_malformed_raises(
    changes: dict[str, record.Value], match: str
) -> None:
    fields = record.decode(run_record_of("sha256", 3))
    fields.update(changes)

    with pytest.raises(ValueError, match=match):
        parse_run_record(record.encode(fields))
