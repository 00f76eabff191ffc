"""The signing key: environment or encrypted keystore; never in logs or messages."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from eth_account import Account

from notary.anchor.wallet import load_account
from notary.config import AnchorConfig
from notary.errors import ConfigError

# A throwaway key made for these tests only.
TEST_KEY = "0x" + "5a" * 32
TEST_ADDRESS = Account.from_key(TEST_KEY).address


def _keystore(path: Path, password: str) -> Path:
    document = Account.encrypt(TEST_KEY, password, kdf="pbkdf2", iterations=2)
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def test_load_account_env_key_gives_its_address(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("NOTARY_ANCHOR_KEY", TEST_KEY)

    account = load_account(AnchorConfig())

    assert account is not None and account.address == TEST_ADDRESS


def test_load_account_no_key_returns_none() -> None:
    assert load_account(AnchorConfig()) is None


def test_load_account_bad_hex_error_hides_value(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("NOTARY_ANCHOR_KEY", "0xnot-a-key-secret-part")

    with pytest.raises(ConfigError, match="does not hold a valid hex") as caught:
        load_account(AnchorConfig())

    assert "secret-part" not in str(caught.value)
    assert caught.value.__cause__ is None


def test_load_account_keystore_decrypts_relative_to_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _keystore(tmp_path / "wallet.json", "correct horse")
    monkeypatch.setenv("NOTARY_ANCHOR_PASSWORD", "correct horse")
    config = AnchorConfig(keystore="wallet.json")

    account = load_account(config, home=tmp_path)

    assert account is not None and account.address == TEST_ADDRESS


def test_load_account_keystore_wrong_password_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _keystore(tmp_path / "wallet.json", "correct horse")
    monkeypatch.setenv("NOTARY_ANCHOR_PASSWORD", "wrong")

    with pytest.raises(ConfigError, match=r"cannot decrypt keystore wallet\.json"):
        load_account(AnchorConfig(keystore=str(path)))


def test_load_account_keystore_without_password_fails(tmp_path: Path) -> None:
    path = _keystore(tmp_path / "wallet.json", "pw")

    with pytest.raises(
        ConfigError, match="needs its password in NOTARY_ANCHOR_PASSWORD"
    ):
        load_account(AnchorConfig(keystore=str(path)))


def test_load_account_logs_address_never_key(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("NOTARY_ANCHOR_KEY", TEST_KEY)
    caplog.set_level(logging.DEBUG, logger="notary")

    load_account(AnchorConfig())

    assert TEST_ADDRESS in caplog.text
    assert TEST_KEY[2:] not in caplog.text.lower()
