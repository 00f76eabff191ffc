from pathlib import Path

import pytest

from notary import config
from notary.errors import ConfigError


def _write(home: Path, text: str) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(text, encoding="utf-8")


def test_load_absent_file_gives_defaults(home: Path) -> None:
    settings = config.load(home)

    assert settings.hash_algorithm == "sha256"
    assert settings.database_url == f"sqlite:///{home / 'notary.db'}"
    assert settings.tsas == []


def test_load_default_config_has_builtin_tsa(home: Path) -> None:
    config.write_default(home)

    settings = config.load(home)

    assert [t.name for t in settings.tsas] == ["builtin"]
    assert settings.tsas[0].is_builtin


def test_load_unknown_key_is_named(home: Path) -> None:
    _write(home, '[notary]\nhash_algoritm = "sha256"\n')

    with pytest.raises(ConfigError, match="hash_algoritm"):
        config.load(home)


def test_load_unknown_tsa_key_is_named(home: Path) -> None:
    _write(home, '[[tsa]]\nname = "a"\nurl = "builtin"\npassword = "x"\n')

    with pytest.raises(ConfigError, match="password"):
        config.load(home)


def test_load_environment_overrides_file(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write(home, '[notary]\nhash_algorithm = "sha256"\nworkers = 2\n')
    monkeypatch.setenv("NOTARY_HASH_ALGORITHM", "sha512")
    monkeypatch.setenv("NOTARY_WORKERS", "7")

    settings = config.load(home)

    assert (settings.hash_algorithm, settings.workers) == ("sha512", 7)


def test_load_bad_algorithm_rejected(home: Path) -> None:
    _write(home, '[notary]\nhash_algorithm = "md5"\n')

    with pytest.raises(ConfigError, match="unsupported hash algorithm 'md5'"):
        config.load(home)


def test_load_broken_toml_is_config_error(home: Path) -> None:
    _write(home, "[notary\n")

    with pytest.raises(ConfigError, match="cannot read"):
        config.load(home)


def test_tsas_for_stream_unknown_tsa_rejected(home: Path) -> None:
    _write(
        home,
        '[[tsa]]\nname = "a"\nurl = "builtin"\n'
        '[[stream]]\nname = "s"\nsource = "/x"\ntsas = ["b"]\n',
    )

    with pytest.raises(ConfigError, match="unknown tsa b"):
        config.load(home)


def test_load_non_integer_workers_rejected(home: Path) -> None:
    _write(home, '[notary]\nworkers = "many"\n')

    with pytest.raises(ConfigError, match="workers must be an integer"):
        config.load(home)
