"""The offline verifier: tampering is caught and named, trust is never assumed."""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509

from notary.bundle import BundleContent, BundleTimestamp, write_bundle
from notary.cli import main
from notary.errors import NotFoundError, UsageError
from notary.tsa.server import BuiltinTSA
from notary.tsa.token import load_certificates
from notary.verdict import Check, Verdict
from notary.verify import (
    NO_TRUST_ROOT_WARNING,
    BundleReport,
    verify_bundle,
    verify_bundles,
)
from tests.bundlekit import content_of, evidence_of, make_bundle, write_files

FILES = {
    "a.log": b"2026-11-01 login ok\n",
    "empty.txt": b"",
    "sub/b.log": b"2026-11-02 transfer 100\n" * 50,
    "sub/deeper/c.json": b'{"k": 1}',
    "z.bin": bytes(range(256)),
}

Change = Callable[[bytes], bytes]


@pytest.fixture(scope="module")
def tsa(tmp_path_factory: pytest.TempPathFactory) -> BuiltinTSA:
    return BuiltinTSA.open(tmp_path_factory.mktemp("tsa"))


@pytest.fixture(scope="module")
def roots(tsa: BuiltinTSA) -> list[x509.Certificate]:
    return load_certificates(tsa.ca_path)


@pytest.fixture
def evidence(tmp_path: Path) -> Path:
    directory = write_files(tmp_path / "evidence", FILES)
    (directory / "link").symlink_to("../outside")
    return directory


@pytest.fixture
def bundle(tmp_path: Path, evidence: Path, tsa: BuiltinTSA) -> Path:
    make_bundle(evidence, tsa, tmp_path / "run.zip")
    return tmp_path / "run.zip"


def _rewrite(bundle: Path, changes: dict[str, Change]) -> Path:
    """Return a copy of ``bundle`` with members passed through ``changes``."""
    with zipfile.ZipFile(bundle) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    for name, change in changes.items():
        members[name] = change(members[name])
    copy = bundle.with_name("tampered.zip")
    with zipfile.ZipFile(copy, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return copy


def _edit_json(edit: Callable[[dict[str, object]], None]) -> Change:
    def change(data: bytes) -> bytes:
        document = json.loads(data)
        edit(document)
        return json.dumps(document).encode()

    return change


def _failed(report: BundleReport) -> list[Check]:
    return [c for c in report.checks if c.ok is False]


def _flip(hex_text: str) -> str:
    return ("1" if hex_text[0] != "1" else "2") + hex_text[1:]


# --- valid, and what "valid" needs ----------------------------------------------------


def test_verify_bundle_untouched_directory_valid(
    bundle: Path, evidence: Path, roots: list[x509.Certificate]
) -> None:
    report = verify_bundle(bundle, directory=evidence, trust_roots=roots)

    assert report.verdict is Verdict.VALID
    assert report.failing_items == []
    assert report.warnings == []
    assert {c.item for c in report.checks if c.name == "item content"} == {
        *FILES,
        "link",
    }


def test_verify_bundle_without_files_checks_internal_consistency_only(
    bundle: Path, roots: list[x509.Certificate]
) -> None:
    report = verify_bundle(bundle, trust_roots=roots)

    assert report.verdict is Verdict.VALID
    assert report.info["scope"] == "internal consistency only"
    assert any("internal consistency" in w for w in report.warnings)
    assert not [c for c in report.checks if c.name == "item content"]


def test_verify_bundle_without_trust_root_indeterminate_and_loud(
    bundle: Path, evidence: Path
) -> None:
    report = verify_bundle(bundle, directory=evidence)

    assert report.verdict is Verdict.INDETERMINATE
    assert report.warnings[0] == NO_TRUST_ROOT_WARNING
    assert report.to_json()["warnings"][0] == NO_TRUST_ROOT_WARNING
    assert [c.name for c in report.checks if c.ok is None] == ["trust root"]


def test_verify_bundle_foreign_trust_root_not_valid(
    bundle: Path, evidence: Path, tmp_path: Path
) -> None:
    other = BuiltinTSA.open(tmp_path / "other-tsa")

    report = verify_bundle(
        bundle, directory=evidence, trust_roots=load_certificates(other.ca_path)
    )

    assert report.verdict is not Verdict.VALID
    assert next(c for c in report.checks if c.name == "timestamps").ok is not True


# --- tampered evidence ----------------------------------------------------------------


def test_verify_bundle_one_byte_changed_invalid_naming_that_file(
    bundle: Path, evidence: Path, roots: list[x509.Certificate]
) -> None:
    target = evidence / "sub" / "b.log"
    data = bytearray(target.read_bytes())
    data[100] ^= 0x01
    target.write_bytes(bytes(data))

    report = verify_bundle(bundle, directory=evidence, trust_roots=roots)

    assert report.verdict is Verdict.INVALID
    assert report.failing_items == ["sub/b.log"]
    content = next(c for c in _failed(report) if c.name == "item content")
    assert content.detail.startswith("changed: content digest")


def test_verify_bundle_grown_file_invalid_with_size(
    bundle: Path, evidence: Path, roots: list[x509.Certificate]
) -> None:
    with open(evidence / "a.log", "ab") as handle:
        handle.write(b"appended\n")

    report = verify_bundle(bundle, directory=evidence, trust_roots=roots)

    assert report.failing_items == ["a.log"]
    assert "changed: size 29 bytes (expected 20)" in [c.detail for c in _failed(report)]


def test_verify_bundle_renamed_file_invalid_missing_and_extra(
    bundle: Path, evidence: Path, roots: list[x509.Certificate]
) -> None:
    (evidence / "a.log").rename(evidence / "a-renamed.log")

    report = verify_bundle(bundle, directory=evidence, trust_roots=roots)

    assert report.verdict is Verdict.INVALID
    assert sorted(report.failing_items) == ["a-renamed.log", "a.log"]
    details = {c.item: c.detail for c in _failed(report)}
    assert details["a.log"].startswith("missing")
    assert "not an item of the run" in details["a-renamed.log"]


def test_verify_bundle_symlink_retargeted_invalid(
    bundle: Path, evidence: Path, roots: list[x509.Certificate]
) -> None:
    (evidence / "link").unlink()
    (evidence / "link").symlink_to("../elsewhere")

    report = verify_bundle(bundle, directory=evidence, trust_roots=roots)

    assert report.failing_items == ["link"]


def test_verify_bundle_file_replaced_by_symlink_invalid(
    bundle: Path, evidence: Path, roots: list[x509.Certificate]
) -> None:
    (evidence / "z.bin").unlink()
    (evidence / "z.bin").symlink_to("a.log")

    report = verify_bundle(bundle, directory=evidence, trust_roots=roots)

    assert report.failing_items == ["z.bin"]
    assert "is a symlink (expected a file)" in _failed(report)[0].detail


# --- tampered bundle ------------------------------------------------------------------


def test_verify_bundle_changed_record_invalid(
    bundle: Path, evidence: Path, roots: list[x509.Certificate]
) -> None:
    def edit(manifest: dict[str, object]) -> None:
        item = manifest["items"][0]  # type: ignore[index]
        item["record"] = item["record"].replace('"size":20', '"size":21')

    tampered = _rewrite(bundle, {"manifest.json": _edit_json(edit)})

    report = verify_bundle(tampered, directory=evidence, trust_roots=roots)

    assert report.verdict is Verdict.INVALID
    assert report.failing_items == ["a.log"]
    assert {c.name for c in _failed(report)} >= {"item record", "item proof"}


def test_verify_bundle_changed_sibling_invalid(
    bundle: Path, roots: list[x509.Certificate]
) -> None:
    def edit(proof: dict[str, object]) -> None:
        siblings = proof["siblings"]
        siblings[0] = _flip(siblings[0])  # type: ignore[index]

    tampered = _rewrite(bundle, {"items/000003.json": _edit_json(edit)})

    report = verify_bundle(tampered, trust_roots=roots)

    assert report.verdict is Verdict.INVALID
    failed = _failed(report)
    assert [c.name for c in failed] == ["item proof", "item evidence record"]
    assert failed[0].detail.startswith("leads to ")


def test_verify_bundle_wrong_root_invalid(
    bundle: Path, roots: list[x509.Certificate]
) -> None:
    def edit(manifest: dict[str, object]) -> None:
        tree = manifest["tree"]
        tree["root"] = _flip(tree["root"])  # type: ignore[index]

    tampered = _rewrite(bundle, {"manifest.json": _edit_json(edit)})

    report = verify_bundle(tampered, trust_roots=roots)

    assert report.verdict is Verdict.INVALID
    names = {c.name for c in _failed(report)}
    assert {"timestamps", "run record", "item proof"} <= names


def test_verify_bundle_bad_token_signature_invalid(
    bundle: Path, roots: list[x509.Certificate]
) -> None:
    def corrupt(data: bytes) -> bytes:
        damaged = bytearray(data)
        damaged[-10] ^= 0x55  # inside the ECDSA signature value
        return bytes(damaged)

    tampered = _rewrite(bundle, {"timestamps/builtin-1.tsr": corrupt})

    report = verify_bundle(tampered, trust_roots=roots)

    assert report.verdict is Verdict.INVALID
    summary = next(c for c in report.checks if c.name == "timestamps")
    assert summary.ok is False
    assert "expected at least 1" in summary.detail


def test_verify_bundle_manifest_lying_about_token_invalid(
    bundle: Path, roots: list[x509.Certificate]
) -> None:
    def edit(manifest: dict[str, object]) -> None:
        manifest["timestamps"][0]["gen_time_raw"] = "20200101000000Z"  # type: ignore[index]

    tampered = _rewrite(bundle, {"manifest.json": _edit_json(edit)})

    report = verify_bundle(tampered, trust_roots=roots)

    assert [c.name for c in _failed(report)] == ["timestamp record"]


def test_verify_bundle_missing_proof_file_invalid(
    bundle: Path, roots: list[x509.Certificate]
) -> None:
    with zipfile.ZipFile(bundle) as archive:
        members = {n: archive.read(n) for n in archive.namelist()}
    del members["items/000002.json"]
    stripped = bundle.with_name("stripped.zip")
    with zipfile.ZipFile(stripped, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)

    report = verify_bundle(stripped, trust_roots=roots)

    assert report.verdict is Verdict.INVALID
    assert report.failing_items == ["empty.txt"]


# --- --file and --as ------------------------------------------------------------------


def test_verify_bundle_file_by_relative_path_valid(
    bundle: Path,
    evidence: Path,
    roots: list[x509.Certificate],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(evidence)

    report = verify_bundle(bundle, files=[(Path("sub/b.log"), None)], trust_roots=roots)

    assert report.verdict is Verdict.VALID
    assert [c.item for c in report.checks if c.name == "item content"] == ["sub/b.log"]


def test_verify_bundle_file_by_unique_basename_valid(
    bundle: Path, tmp_path: Path, roots: list[x509.Certificate]
) -> None:
    copy = write_files(tmp_path / "copy", {"c.json": FILES["sub/deeper/c.json"]})

    report = verify_bundle(bundle, files=[(copy / "c.json", None)], trust_roots=roots)

    assert report.verdict is Verdict.VALID


def test_verify_bundle_ambiguous_file_asks_for_as(
    tmp_path: Path, tsa: BuiltinTSA, roots: list[x509.Certificate]
) -> None:
    evidence = write_files(tmp_path / "ev", {"x/app.log": b"1", "y/app.log": b"2"})
    make_bundle(evidence, tsa, tmp_path / "b.zip")
    given = write_files(tmp_path / "given", {"app.log": b"2"}) / "app.log"

    with pytest.raises(UsageError, match="matches several items") as caught:
        verify_bundle(tmp_path / "b.zip", files=[(given, None)], trust_roots=roots)

    assert caught.value.hint == "name the item with --as ITEM"
    report = verify_bundle(
        tmp_path / "b.zip", files=[(given, "y/app.log")], trust_roots=roots
    )
    assert report.verdict is Verdict.VALID


def test_verify_bundle_file_matching_no_item_raises(
    bundle: Path, tmp_path: Path
) -> None:
    stray = write_files(tmp_path / "s", {"unknown.txt": b"?"}) / "unknown.txt"

    with pytest.raises(NotFoundError, match="no item of the bundle has this path"):
        verify_bundle(bundle, files=[(stray, None)])


def test_verify_bundle_dir_and_file_together_raises(
    bundle: Path, evidence: Path
) -> None:
    with pytest.raises(UsageError, match="not both"):
        verify_bundle(bundle, directory=evidence, files=[(evidence / "a.log", None)])


# --- partial bundles, anchors, unstable items -----------------------------------------


def _partial(content: BundleContent, keep: set[str]) -> BundleContent:
    items = [item for item in content.items if item.path in keep]
    return BundleContent(**{**content.__dict__, "items": items})


def test_verify_bundle_anchor_offline_never_decides(
    tmp_path: Path, evidence: Path, tsa: BuiltinTSA, roots: list[x509.Certificate]
) -> None:
    content = content_of(evidence_of(evidence), tsa)
    content.anchors = [
        {
            "chain_id": 1,
            "contract": "0x" + "11" * 20,
            "sender": "0x" + "44" * 20,
            "tx_hash": "0x" + "22" * 32,
            "block_number": 5,
            "block_hash": "0x" + "33" * 32,
            "block_time": "2026-12-01T00:00:00Z",
            "log_index": 0,
            "root": content.root.hex(),
            "state": "final",
        }
    ]
    write_bundle(content, tmp_path / "anchored.zip")

    report = verify_bundle(tmp_path / "anchored.zip", trust_roots=roots)

    anchors = [c for c in report.checks if c.name.startswith("anchor")]
    assert anchors
    assert all(c.facts.get("advisory") for c in anchors)
    assert any(c.ok is None for c in anchors)
    assert report.verdict is Verdict.VALID


# --- evidence records -----------------------------------------------------------------


def _extract(bundle: Path, name: str, target: Path) -> Path:
    with zipfile.ZipFile(bundle) as archive:
        target.write_bytes(archive.read(name))
    return target


def test_verify_evidence_record_with_file_valid(
    bundle: Path, evidence: Path, tmp_path: Path, roots: list[x509.Certificate]
) -> None:
    ers = _extract(bundle, "items/000001.ers", tmp_path / "a.log.ers")

    report = verify_bundle(ers, files=[(evidence / "a.log", None)], trust_roots=roots)

    assert report.verdict is Verdict.VALID
    assert report.info["kind"] == "evidence-record"
    assert any("no metadata record" in w for w in report.warnings)


def test_verify_evidence_record_other_file_invalid(
    bundle: Path, evidence: Path, tmp_path: Path, roots: list[x509.Certificate]
) -> None:
    ers = _extract(bundle, "items/000001.ers", tmp_path / "a.log.ers")

    report = verify_bundle(ers, files=[(evidence / "z.bin", None)], trust_roots=roots)

    assert report.verdict is Verdict.INVALID
    assert report.failing_items == [str(evidence / "z.bin")]


def test_verify_evidence_record_without_trust_root_indeterminate(
    bundle: Path, evidence: Path, tmp_path: Path
) -> None:
    ers = _extract(bundle, "items/000001.ers", tmp_path / "a.log.ers")

    report = verify_bundle(ers, files=[(evidence / "a.log", None)])

    assert report.verdict is Verdict.INDETERMINATE
    assert report.warnings[0].startswith("no --trust-root given")


# --- several bundles: the run chain ---------------------------------------------------


def _chain(tmp_path: Path, tsa: BuiltinTSA, periods: list[str]) -> dict[str, Path]:
    """Write one bundle per period, each chained to the one before."""
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


def test_verify_bundles_unbroken_chain_valid(
    tmp_path: Path, tsa: BuiltinTSA, roots: list[x509.Certificate]
) -> None:
    bundles = _chain(tmp_path, tsa, ["2026-09", "2026-10", "2026-11"])

    report = verify_bundles(list(bundles.values()), trust_roots=roots)

    assert report.verdict is Verdict.VALID
    links = [c for c in report.checks if c.name == "run chain"]
    assert [c.ok for c in links] == [True, True]


def test_verify_bundles_missing_period_named(
    tmp_path: Path, tsa: BuiltinTSA, roots: list[x509.Certificate]
) -> None:
    bundles = _chain(tmp_path, tsa, ["2026-08", "2026-09", "2026-10", "2026-11"])
    given = [bundles["2026-11"], bundles["2026-08"], bundles["2026-09"]]

    report = verify_bundles(given, trust_roots=roots)

    assert report.verdict is Verdict.INVALID
    failed = [c for c in report.checks if c.ok is False]
    assert [c.item for c in failed] == ["2026-10", "2026-11"]
    assert (
        failed[0].detail == "no bundle for period 2026-10 (between 2026-09 and 2026-11)"
    )
    assert "links to period 2026-10, whose bundle is missing" in failed[1].detail


def test_verify_bundles_broken_link_named(
    tmp_path: Path, tsa: BuiltinTSA, roots: list[x509.Certificate]
) -> None:
    first = _chain(tmp_path / "a", tsa, ["2026-09"])["2026-09"]
    other = _chain(tmp_path / "b", tsa, ["2026-09", "2026-10"])["2026-10"]

    report = verify_bundles([first, other], trust_roots=roots)

    assert report.verdict is Verdict.INVALID
    broken = [c for c in report.checks if c.ok is False]
    assert len(broken) == 1 and broken[0].detail.startswith("broken link: 2026-10")


def test_verify_bundles_first_without_previous_is_fine_later_one_is_not(
    tmp_path: Path, tsa: BuiltinTSA, roots: list[x509.Certificate]
) -> None:
    first = _chain(tmp_path / "a", tsa, ["2026-09"])["2026-09"]
    unchained = _chain(tmp_path / "b", tsa, ["2026-10"])["2026-10"]

    report = verify_bundles([first, unchained], trust_roots=roots)

    assert [c.detail for c in report.checks if c.ok is False] == [
        "2026-10 holds no previous root (expected the root of 2026-09)"
    ]


# --- the command line -----------------------------------------------------------------


def test_cli_verify_valid_exit_0(
    bundle: Path, evidence: Path, tsa: BuiltinTSA, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "verify",
            str(bundle),
            "--dir",
            str(evidence),
            "--trust-root",
            str(tsa.ca_path),
        ]
    )

    out = capsys.readouterr().out.splitlines()
    assert code == 0
    assert out[-1] == "verdict: VALID"


def test_cli_verify_tampered_exit_1_names_file(
    bundle: Path, evidence: Path, tsa: BuiltinTSA, capsys: pytest.CaptureFixture[str]
) -> None:
    (evidence / "empty.txt").write_bytes(b"not empty any more")

    code = main(
        [
            "verify",
            str(bundle),
            "--dir",
            str(evidence),
            "--trust-root",
            str(tsa.ca_path),
        ]
    )

    out = capsys.readouterr().out.splitlines()
    assert code == 1
    assert out[-1] == "verdict: INVALID; failing: empty.txt"
    assert any(line.startswith("  FAIL  item content") for line in out)


def test_cli_verify_no_trust_root_exit_4_warns_top_and_bottom(
    bundle: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["verify", str(bundle)])

    out = capsys.readouterr().out.splitlines()
    assert code == 4
    assert out[0] == f"WARNING: {NO_TRUST_ROOT_WARNING}"
    assert f"WARNING: {NO_TRUST_ROOT_WARNING}" in out[-3:]


def test_cli_verify_json_one_document(
    bundle: Path, evidence: Path, tsa: BuiltinTSA, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "verify",
            str(bundle),
            "--dir",
            str(evidence),
            "--json",
            "--trust-root",
            str(tsa.ca_path),
        ]
    )

    document = json.loads(capsys.readouterr().out)
    assert code == 0
    assert document["verdict"] == "valid"
    assert {"name", "ok", "detail"} <= set(document["checks"][0])
    assert any(c.get("item") == "a.log" for c in document["checks"])


def test_cli_verify_not_a_bundle_exit_2_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"PK\x03\x04 truncated")

    code = main(["verify", str(junk)])

    err = capsys.readouterr().err.splitlines()
    assert code == 2
    assert len(err) == 1 and "not a zip file or truncated" in err[0]


def test_cli_verify_as_without_file_exit_2(bundle: Path) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["verify", str(bundle), "--as", "a.log"])

    assert caught.value.code == 2


def test_cli_verify_several_bundles_with_dir_exit_2(
    bundle: Path, evidence: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["verify", str(bundle), str(bundle), "--dir", str(evidence)])

    assert code == 2
    assert "check one bundle" in capsys.readouterr().err


def test_cli_verify_many_items_summarised_failures_listed(
    tmp_path: Path, tsa: BuiltinTSA, capsys: pytest.CaptureFixture[str]
) -> None:
    files = {f"logs/{k:03d}.log": b"line %d\n" % k for k in range(30)}
    evidence = write_files(tmp_path / "many", files)
    make_bundle(evidence, tsa, tmp_path / "many.zip")
    os.truncate(evidence / "logs" / "007.log", 0)

    code = main(
        [
            "verify",
            str(tmp_path / "many.zip"),
            "--dir",
            str(evidence),
            "--trust-root",
            str(tsa.ca_path),
        ]
    )

    out = capsys.readouterr().out.splitlines()
    assert code == 1
    assert "  items: 30 in this bundle; content checked for all 30" in out
    assert (
        "  ok    item checks passed: record 30, content 29, proof 29, "
        "evidence record 30"
    ) in out
    assert [line for line in out if "[logs/007.log]" in line]
    assert out[-1] == "verdict: INVALID; failing: logs/007.log"


def test_cli_verify_several_bundles_names_missing_period(
    tmp_path: Path, tsa: BuiltinTSA, capsys: pytest.CaptureFixture[str]
) -> None:
    bundles = _chain(tmp_path, tsa, ["2026-09", "2026-10", "2026-11"])

    code = main(
        [
            "verify",
            str(bundles["2026-09"]),
            str(bundles["2026-11"]),
            "--trust-root",
            str(tsa.ca_path),
        ]
    )

    out = capsys.readouterr().out.splitlines()
    assert code == 1
    assert out[-2] == (
        "verdict: INVALID; chain: no bundle for period 2026-10 (between 2026-09 and "
        "2026-11); 2026-11 links to period 2026-10, whose bundle is missing"
    )


def test_verify_bundle_one_bad_token_of_two_still_valid_and_said(
    tmp_path: Path,
    evidence: Path,
    tsa: BuiltinTSA,
    capsys: pytest.CaptureFixture[str],
) -> None:
    content = content_of(evidence_of(evidence), tsa)
    good = content.timestamps[0]
    damaged = bytearray(good.response)
    damaged[-10] ^= 0x55
    bad = BundleTimestamp(
        **{**good.__dict__, "tsa": "second", "response": bytes(damaged)}
    )
    content.timestamps.append(bad)
    write_bundle(content, tmp_path / "two.zip")

    code = main(["verify", str(tmp_path / "two.zip"), "--trust-root", str(tsa.ca_path)])

    out = capsys.readouterr().out.splitlines()
    assert code == 0
    assert "verdict: VALID (advisory checks failed: timestamp)" in out
    assert any(
        line.startswith("  FAIL  timestamp (advisory, does not decide): second")
        for line in out
    )
