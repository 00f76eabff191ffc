"""The main job through the command line, on real logs: attest, export, verify,
tamper."""

from __future__ import annotations

import json
import os
import shutil
import zipfile
from pathlib import Path
from typing import Any

import pytest

from notary.cli import main


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _json(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any]:
    code, out, err = _run(capsys, *argv, "--json")
    assert out, err
    return code, json.loads(out)


@pytest.fixture
def initialised(home: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    code, _, err = _run(capsys, "init")
    assert code == 0, err
    return home


@pytest.fixture
def logs_copy(shared_data: Path, tmp_path: Path) -> Path:
    """A private copy of the real logs, safe to tamper with."""
    copy = tmp_path / "logs"
    shutil.copytree(shared_data / "logs", copy)
    return copy


def _attest_export(
    capsys: pytest.CaptureFixture[str], evidence: Path, stream: str, bundle: Path
) -> dict[str, Any]:
    code, summary = _json(
        capsys, "attest", str(evidence), "--stream", stream, "--period", "2026-11"
    )
    assert code == 0, summary
    code, _, err = _run(capsys, "export", str(summary["run"]), "-o", str(bundle))
    assert code == 0, err
    return dict(summary)


def _verify(
    capsys: pytest.CaptureFixture[str], home: Path, bundle: Path, *extra: str
) -> tuple[int, Any]:
    ca = str(home / "tsa" / "ca.pem")
    return _json(capsys, "verify", str(bundle), "--trust-root", ca, *extra)


@pytest.mark.parametrize("dataset", ["loghub", "cloudtrail"])
def test_attest_real_logs_every_file_verifies(
    initialised: Path,
    logs_copy: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    dataset: str,
) -> None:
    bundle = tmp_path / f"{dataset}.zip"
    summary = _attest_export(capsys, logs_copy / dataset, dataset, bundle)
    files = [p for p in (logs_copy / dataset).rglob("*") if p.is_file()]

    code, report = _verify(
        capsys, initialised, bundle, "--dir", str(logs_copy / dataset)
    )

    assert summary["state"] == "complete"
    assert summary["items"] == len(files)
    assert len(bytes.fromhex(summary["root"])) == 32
    assert (code, report["verdict"]) == (0, "valid")


def test_verify_one_changed_byte_names_that_file(
    initialised: Path,
    logs_copy: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    evidence = logs_copy / "loghub"
    bundle = tmp_path / "b.zip"
    _attest_export(capsys, evidence, "loghub", bundle)
    target = evidence / "OpenSSH" / "OpenSSH_2k.log"
    data = bytearray(target.read_bytes())
    data[1000] ^= 0x01
    target.write_bytes(bytes(data))

    code, report = _verify(capsys, initialised, bundle, "--dir", str(evidence))

    failing = {c.get("item") for c in report["checks"] if c["ok"] is False}
    assert (code, report["verdict"]) == (1, "invalid")
    assert failing == {"OpenSSH/OpenSSH_2k.log"}


def test_verify_renamed_file_is_invalid(
    initialised: Path,
    logs_copy: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    evidence = logs_copy / "cloudtrail"
    bundle = tmp_path / "b.zip"
    _attest_export(capsys, evidence, "cloudtrail", bundle)
    original = next((evidence / "CloudTrail").glob("*.json"))
    original.rename(original.with_name("renamed.json"))

    code, out, _ = _run(
        capsys,
        "verify",
        str(bundle),
        "--dir",
        str(evidence),
        "--trust-root",
        str(initialised / "tsa" / "ca.pem"),
    )

    assert code == 1
    assert original.name in out and "renamed.json" in out


def test_verify_single_file_with_as(
    initialised: Path,
    logs_copy: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    evidence = logs_copy / "loghub"
    bundle = tmp_path / "b.zip"
    _attest_export(capsys, evidence, "loghub", bundle)
    loose = tmp_path / "handed-over.log"
    shutil.copy(evidence / "Apache" / "Apache_2k.log", loose)

    code, report = _verify(
        capsys,
        initialised,
        bundle,
        "--file",
        str(loose),
        "--as",
        "Apache/Apache_2k.log",
    )

    assert (code, report["verdict"]) == (0, "valid")


def test_export_selected_item_only(
    initialised: Path,
    logs_copy: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    summary = _attest_export(
        capsys, logs_copy / "loghub", "loghub", tmp_path / "all.zip"
    )
    one = tmp_path / "one.zip"

    code, _, err = _run(
        capsys,
        "export",
        str(summary["run"]),
        "-o",
        str(one),
        "--item",
        "HDFS/HDFS_2k.log",
    )

    manifest = json.loads(zipfile.ZipFile(one).read("manifest.json"))
    assert code == 0, err
    assert [item["path"] for item in manifest["items"]] == ["HDFS/HDFS_2k.log"]
    assert manifest["tree"]["leaves"] == summary["items"] + 1  # + the run record


def test_attest_empty_directory_is_usage_error_without_run(
    initialised: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()

    code, _, err = _run(
        capsys, "attest", str(empty), "--stream", "s", "--period", "2026-11"
    )
    _, runs = _json(capsys, "runs")

    assert code == 2
    assert "nothing to attest" in err and "Traceback" not in err
    assert runs == []


def test_attest_missing_path_is_usage_error(
    initialised: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _run(
        capsys, "attest", str(tmp_path / "nope"), "--stream", "s", "--period", "2026-11"
    )

    assert code == 2
    assert "nope" in err and len(err.strip().splitlines()) <= 2


def test_attest_same_period_twice_conflicts(
    initialised: Path, logs_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = (
        "attest",
        str(logs_copy / "cloudtrail"),
        "--stream",
        "ct",
        "--period",
        "2026-11",
    )
    first, _, _ = _run(capsys, *args)

    second, _, err = _run(capsys, *args)

    assert (first, second) == (0, 2)
    assert "run 1 exists (complete)" in err


def test_attest_tsa_down_then_resume_without_rehashing(
    initialised: Path, logs_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = initialised / "config.toml"
    original = config.read_text()
    config.write_text(
        original.replace(
            'url = "builtin"', 'url = "http://127.0.0.1:9/tsr"\nretries = 1'
        )
    )
    code, summary = _json(
        capsys,
        "attest",
        str(logs_copy / "loghub"),
        "--stream",
        "s",
        "--period",
        "2026-10",
    )
    config.write_text(original)

    resumed_code, resumed = _json(capsys, "attest", "--resume", str(summary["run"]))

    assert (code, summary["state"]) == (3, "awaiting_timestamp")
    assert summary["timestamp_errors"] and summary["root"]
    assert (resumed_code, resumed["state"]) == (0, "complete")
    assert resumed["hashed_now"] == 0
    assert resumed["root"] == summary["root"]


def test_attest_two_periods_chain_to_previous_root(
    initialised: Path, logs_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    evidence = str(logs_copy / "cloudtrail")
    _, first = _json(capsys, "attest", evidence, "--stream", "c", "--period", "2026-10")

    _, second = _json(
        capsys, "attest", evidence, "--stream", "c", "--period", "2026-11"
    )

    assert second["previous_run"] == first["run"]
    assert second["root"] != first["root"]


def test_attest_special_files_reported(
    initialised: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    evidence = tmp_path / "ev"
    evidence.mkdir()
    (evidence / "a.log").write_bytes(b"")
    os.mkfifo(evidence / "pipe")
    (evidence / "link").symlink_to("../outside")

    code, summary = _json(
        capsys, "attest", str(evidence), "--stream", "s", "--period", "2026-11"
    )

    assert code == 0
    assert summary["items"] == 2
    assert [s["path"] for s in summary["skipped"]] == ["pipe"]


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"not a zip at all", "not a"), (b"PK\x03\x04truncated", "")],
)
def test_verify_unreadable_bundle_is_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes, message: str
) -> None:
    bundle = tmp_path / "bad.zip"
    bundle.write_bytes(content)

    code, _, err = _run(capsys, "verify", str(bundle))

    assert code == 2
    assert message in err and "Traceback" not in err


def test_attest_interrupted_keeps_hashed_items_for_resume(
    initialised: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from notary.sources.filesystem import FileSource

    evidence = tmp_path / "many"
    evidence.mkdir()
    for n in range(120):
        (evidence / f"f{n:03d}.log").write_bytes(b"line %d\n" % n)
    original = FileSource.digest
    calls = {"n": 0}

    def interrupted(self: FileSource, entry: Any, algorithm: str) -> Any:
        calls["n"] += 1
        if calls["n"] == 101:
            raise KeyboardInterrupt
        return original(self, entry, algorithm)

    monkeypatch.setenv("NOTARY_WORKERS", "1")
    monkeypatch.setattr(FileSource, "digest", interrupted)
    code, _, err = _run(
        capsys, "attest", str(evidence), "--stream", "s", "--period", "2026-11"
    )
    monkeypatch.setattr(FileSource, "digest", original)

    resumed_code, resumed = _json(capsys, "attest", "--resume", "1")

    assert code == 130 and "interrupted" in err
    assert (resumed_code, resumed["state"]) == (0, "complete")
    assert resumed["hashed_now"] == 20
    assert resumed["items"] == 120


def test_attest_earlier_period_after_later_one_refused(
    initialised: Path, logs_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    evidence = str(logs_copy / "cloudtrail")
    _run(capsys, "attest", evidence, "--stream", "c", "--period", "2026-11")

    code, _, err = _run(
        capsys, "attest", evidence, "--stream", "c", "--period", "2026-10"
    )

    assert code == 2
    assert "2026-11 is already attested" in err


@pytest.mark.parametrize(
    ("period", "message"),
    [("0000-01", "expected YYYY-MM"), ("2999-01", "has not begun")],
)
def test_attest_impossible_period_is_usage_error(
    initialised: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    period: str,
    message: str,
) -> None:
    (tmp_path / "a.log").write_bytes(b"x")

    code, _, err = _run(
        capsys, "attest", str(tmp_path / "a.log"), "--stream", "s", "--period", period
    )

    assert code == 2
    assert message in err and "internal error" not in err


def test_export_refuses_existing_file_and_non_regular_target(
    initialised: Path,
    logs_copy: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    bundle = tmp_path / "b.zip"
    summary = _attest_export(capsys, logs_copy / "cloudtrail", "ct", bundle)
    run = str(summary["run"])
    before = bundle.read_bytes()
    link = tmp_path / "link.zip"
    link.symlink_to(bundle)

    again, _, err_again = _run(capsys, "export", run, "-o", str(bundle))
    via_link, _, err_link = _run(capsys, "export", run, "-o", str(link))
    no_dir, _, err_dir = _run(
        capsys, "export", run, "-o", str(tmp_path / "no" / "b.zip")
    )
    forced, _, _ = _run(capsys, "export", run, "-o", str(bundle), "--force")

    assert (again, via_link, no_dir, forced) == (2, 2, 2, 0)
    assert "already exists" in err_again
    assert "not a regular file" in err_link
    assert "does not exist" in err_dir
    assert zipfile.is_zipfile(bundle) and before[:2] == b"PK"


def test_json_error_is_one_document_on_stdout(
    initialised: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _run(capsys, "show", "42", "--json")

    assert code == 2
    assert json.loads(out)["error"] == "run 42: no such run"
    assert "no such run" in err


def test_verbose_flag_after_command_accepted(
    initialised: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _run(capsys, "runs", "-v")

    assert code == 0
    assert "no runs yet" in out


def test_attest_path_for_configured_stream_refused(
    initialised: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = initialised / "config.toml"
    config.write_text(
        config.read_text() + f'\n[[stream]]\nname = "erp"\nsource = "{tmp_path}/snap"\n'
    )
    (tmp_path / "other.log").write_bytes(b"x")

    code, _, err = _run(
        capsys,
        "attest",
        str(tmp_path / "other.log"),
        "--stream",
        "erp",
        "--period",
        "2026-11",
    )

    assert code == 2
    assert "is configured with source" in err


def test_verify_partial_run_warns_unreadable_files(
    initialised: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from notary.sources import Hashed
    from notary.sources.filesystem import FileSource

    evidence = tmp_path / "ev"
    evidence.mkdir()
    for name in ("a.log", "b.log"):
        (evidence / name).write_bytes(name.encode())
    original = FileSource.digest

    def unreadable_b(self: FileSource, entry: Any, algorithm: str) -> Any:
        if entry.path == b"b.log":
            return Hashed(entry, "error", None, 0, {}, error="permission denied")
        return original(self, entry, algorithm)

    monkeypatch.setattr(FileSource, "digest", unreadable_b)
    bundle = tmp_path / "b.zip"
    summary = _attest_export(capsys, evidence, "s", bundle)

    code, out, _ = _run(
        capsys,
        "verify",
        str(bundle),
        "--trust-root",
        str(initialised / "tsa" / "ca.pem"),
    )

    assert summary["partial"] is True
    assert code == 0
    assert "the run was partial: 1 file(s) could not be read" in out


def test_attest_empty_period_allowed_for_schedules_verifies(
    initialised: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from notary import attest, config
    from notary.store import Store

    settings = config.load(initialised)
    empty = tmp_path / "empty"
    empty.mkdir()
    summary = attest.attest(
        settings,
        Store(settings.database_url),
        stream="s",
        period="2026-10",
        paths=[str(empty)],
        allow_empty=True,
    )
    bundle = tmp_path / "b.zip"
    _run(capsys, "export", str(summary.run.id), "-o", str(bundle))

    code, report = _verify(capsys, initialised, bundle, "--dir", str(empty))

    assert (summary.run.state, summary.run.item_count) == ("complete", 0)
    assert (code, report["verdict"]) == (0, "valid")
