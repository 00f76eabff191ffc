"""``notary tsa check``: output and exit codes for each verdict and each bad input."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from notary import cli
from tests.unit.tsa import _issuer
from tests.unit.tsa._issuer import PKI

DATA = b"evidence root"
DIGEST = hashlib.sha256(DATA).digest()


@pytest.fixture(scope="module")
def pki() -> PKI:
    return _issuer.shared_pki()


@pytest.fixture
def files(pki: PKI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder with a valid response, its data, root and intermediate."""
    # only this command: the others are tested with their own modules
    monkeypatch.setattr(cli, "COMMAND_MODULES", ("notary.cli.tsa_check_cmd",))
    resp = _issuer.issue(pki.leaf(), DIGEST, certs=[pki.leaf(), pki.intermediate])
    (tmp_path / "ok.tsr").write_bytes(resp)
    (tmp_path / "bad.tsr").write_bytes(
        _issuer.issue(pki.leaf(), DIGEST, tamper_signature=True)
    )
    (tmp_path / "rejected.tsr").write_bytes(
        _issuer.response("rejection", fail_info={"bad_alg"}, text="no")
    )
    (tmp_path / "data.bin").write_bytes(DATA)
    (tmp_path / "root.pem").write_bytes(pki.root.pem)
    (tmp_path / "inter.pem").write_bytes(pki.intermediate.pem)
    return tmp_path


def _run(files: Path, *args: str) -> int:
    return cli.main(["tsa", "check", *[a.format(d=files) for a in args]])


def test_tsa_check_valid_token_exits_0(
    files: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = _run(
        files, "{d}/ok.tsr", "--data", "{d}/data.bin", "--trust-root", "{d}/root.pem"
    )

    out = capsys.readouterr().out
    assert code == 0
    assert out.splitlines()[-1] == "verdict: valid"
    assert "ok   signature: RSA PKCS#1 v1.5 sha256 by CN=Test TSA" in out


def test_tsa_check_corrupted_signature_exits_1(
    files: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = _run(
        files,
        "{d}/bad.tsr",
        "--digest",
        DIGEST.hex(),
        "--trust-root",
        "{d}/root.pem",
        "--untrusted",
        "{d}/inter.pem",
    )

    assert code == 1
    assert "FAIL signature: does not verify" in capsys.readouterr().out


def test_tsa_check_without_trust_root_exits_4(
    files: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = _run(files, "{d}/ok.tsr", "--digest", DIGEST.hex())

    assert code == 4
    assert "??   path: no trust root supplied" in capsys.readouterr().out


def test_tsa_check_rejection_exits_1_with_status_line(
    files: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = _run(files, "{d}/rejected.tsr", "--digest", DIGEST.hex())

    assert code == 1
    assert capsys.readouterr().out == (
        "FAIL status: rejection (failInfo ['badAlg'], text 'no')\nverdict: invalid\n"
    )


def test_tsa_check_json_prints_report(
    files: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = _run(
        files,
        "{d}/ok.tsr",
        "--digest",
        DIGEST.hex(),
        "--trust-root",
        "{d}/root.pem",
        "--json",
    )

    document = json.loads(capsys.readouterr().out)
    assert code == 0
    assert document["verdict"] == "valid"
    assert document["serial"] == "1234"
    assert document["tsa"] == "CN=Test TSA"
    assert {"reasons", "gen_time", "policy", "hash_algorithm", "nonce"} <= set(document)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["{d}/data.bin", "--digest", "00" * 32], "not DER/BER ASN.1"),
        (["{d}/ok.tsr", "--digest", "abcd"], "2 bytes is no digest length"),
        (["{d}/absent.tsr", "--digest", "00"], "cannot read"),
        (["{d}/ok.tsr", "--digest", "zz"], "--digest: not hexadecimal"),
        (["{d}/ok.tsr", "--digest", "00", "--trust-root", "{d}/data.bin"], "not a PEM"),
        (
            ["{d}/ok.tsr", "--data", "{d}/data.bin", "--digest", "00"],
            "not allowed with",
        ),
        (["{d}/ok.tsr"], "one of the arguments --data --digest is required"),
    ],
    ids=["not-a-token", "short", "missing", "bad-hex", "bad-root", "both", "neither"],
)
def test_tsa_check_bad_input_exits_2_with_one_line(
    files: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    try:
        code = _run(files, *args)
    except SystemExit as exc:  # argparse usage errors
        code = int(exc.code or 0)

    err = capsys.readouterr().err
    assert code == 2
    assert message in err
    assert len([line for line in err.splitlines() if line.startswith("notary:")]) == 1


def test_tsa_check_help_documents_exit_codes(
    files: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit, match="0"):
        _run(files, "--help")

    out = capsys.readouterr().out
    assert "4  indeterminate" in out
    assert "rejection" in out
