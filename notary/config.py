"""Settings: the TOML file in the data directory, overridden by ``NOTARY_*`` variables.

Precedence: command-line flag > environment > config file > default. Unknown keys in the
file are an error that names them. Secrets (TSA passwords, wallet keys) are never read
from the file: the file names environment variables that hold them.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from notary.errors import ConfigError

CONFIG_NAME = "config.toml"
DEFAULT_ALGORITHM = "sha256"
ALGORITHMS = ("sha256", "sha384", "sha512")
DEFAULT_WORKERS = 4
BUILTIN_TSA_URL = "builtin"


def default_home() -> Path:
    """Return the data directory: ``$NOTARY_HOME`` or the user's data directory."""
    explicit = os.environ.get("NOTARY_HOME")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "notary"


@dataclass
class TSAConfig:
    """One time-stamping authority.

    ``url`` is an http(s) URL, or ``builtin`` for the in-process TSA of the data
    directory. ``auth_env`` names a variable holding ``user:password`` for HTTP basic
    auth; ``header_env`` names a variable holding one ``Name: value`` header.
    ``timeout`` is in seconds per attempt; ``retries`` counts attempts in all (at least
    one), repeated only after a 5xx answer, a timeout or a failed connection.
    """

    name: str
    url: str
    trust_roots: list[str] = field(default_factory=list)
    untrusted: list[str] = field(default_factory=list)
    timeout: float = 30.0
    retries: int = 3
    auth_env: str | None = None
    header_env: str | None = None

    @property
    def is_builtin(self) -> bool:
        return self.url == BUILTIN_TSA_URL


@dataclass
class StreamConfig:
    """A configured evidence source attested once per period."""

    name: str
    source: str
    schedule: str = "0 2 1 * *"
    timezone: str = "UTC"
    first_period: str | None = None
    hash_algorithm: str | None = None
    tsas: list[str] | None = None
    endpoint_url: str | None = None
    region: str | None = None
    addressing_style: str | None = None  # S3: "virtual" (OSS, COS), "path" or "auto"
    anchor: bool = False


@dataclass
class AnchorConfig:
    """EVM anchoring; the signing key comes from the environment, never from here.

    ``rpc_url`` ``builtin`` selects the in-process eth-tester chain (proves nothing to
    third parties). ``key_env`` names the variable holding a hex private key;
    ``keystore`` is an encrypted keystore file whose password is in the variable named
    by ``password_env``. ``receipt_timeout`` is the number of seconds after a broadcast
    without a receipt before the next pass re-sends the transaction with higher fees
    (nothing blocks while waiting).
    """

    rpc_url: str = "builtin"
    chain_id: int | None = None
    contract: str | None = None
    confirmations: int = 12
    key_env: str = "NOTARY_ANCHOR_KEY"
    keystore: str | None = None
    password_env: str = "NOTARY_ANCHOR_PASSWORD"
    receipt_timeout: float = 120.0


@dataclass
class Settings:
    home: Path
    database_url: str
    hash_algorithm: str = DEFAULT_ALGORITHM
    workers: int = DEFAULT_WORKERS
    min_tokens: int = 1
    webhook_url: str | None = None
    tsas: list[TSAConfig] = field(default_factory=list)
    streams: list[StreamConfig] = field(default_factory=list)
    anchor: AnchorConfig = field(default_factory=AnchorConfig)

    @property
    def config_path(self) -> Path:
        return self.home / CONFIG_NAME

    def stream(self, name: str) -> StreamConfig | None:
        return next((s for s in self.streams if s.name == name), None)

    def tsas_for(self, stream: StreamConfig | None) -> list[TSAConfig]:
        """Return the TSAs a stream uses: its named ones, else all configured."""
        if stream is None or not stream.tsas:
            return list(self.tsas)
        known = {tsa.name: tsa for tsa in self.tsas}
        missing = [name for name in stream.tsas if name not in known]
        if missing:
            raise ConfigError(
                f"stream {stream.name}: unknown tsa {', '.join(missing)}",
                stream=stream.name,
                missing=missing,
            )
        return [known[name] for name in stream.tsas]


def _build(cls: type[Any], table: Mapping[str, Any], where: str) -> Any:
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(table) - known)
    if unknown:
        raise ConfigError(
            f"config: unknown key(s) in {where}: {', '.join(unknown)}",
            keys=unknown,
            hint=f"known keys: {', '.join(sorted(known))}",
        )
    try:
        return cls(**table)
    except TypeError as exc:
        raise ConfigError(f"config: {where}: {exc}") from exc


def _check_algorithm(name: str, where: str) -> str:
    if name not in ALGORITHMS:
        raise ConfigError(
            f"config: {where}: unsupported hash algorithm {name!r}",
            hint=f"choose one of {', '.join(ALGORITHMS)}",
        )
    return name


def _read_file(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"config: cannot read {path}: {exc}", path=str(path)) from exc


def _env_int(name: str, fallback: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return fallback
    try:
        return int(raw)
    except ValueError as exc:
        raise ConfigError(
            f"environment: {name} must be an integer, got {raw!r}"
        ) from exc


def load(home: Path | None = None) -> Settings:
    """Read settings from ``home/config.toml`` (if present) and the environment.

    Raises ConfigError naming any unknown key or bad value.
    """
    home = home or default_home()
    data = _read_file(home / CONFIG_NAME)
    unknown = sorted(set(data) - {"notary", "tsa", "stream", "anchor"})
    if unknown:
        raise ConfigError(
            f"config: unknown section(s): {', '.join(unknown)}", keys=unknown
        )

    core = dict(data.get("notary", {}))
    allowed = {"database_url", "hash_algorithm", "workers", "min_tokens", "webhook_url"}
    extra = sorted(set(core) - allowed)
    if extra:
        raise ConfigError(
            f"config: unknown key(s) in [notary]: {', '.join(extra)}",
            keys=extra,
            hint=f"known keys: {', '.join(sorted(allowed))}",
        )

    database_url = (
        os.environ.get("NOTARY_DATABASE_URL")
        or core.get("database_url")
        or f"sqlite:///{home / 'notary.db'}"
    )
    algorithm = os.environ.get("NOTARY_HASH_ALGORITHM") or core.get(
        "hash_algorithm", DEFAULT_ALGORITHM
    )
    for key in ("workers", "min_tokens"):
        if key in core and (
            not isinstance(core[key], int) or isinstance(core[key], bool)
        ):
            raise ConfigError(
                f"config: [notary] {key} must be an integer, got {core[key]!r}", key=key
            )
    settings = Settings(
        home=home,
        database_url=database_url,
        hash_algorithm=_check_algorithm(algorithm, "[notary]"),
        workers=_env_int("NOTARY_WORKERS", int(core.get("workers", DEFAULT_WORKERS))),
        min_tokens=_env_int("NOTARY_MIN_TOKENS", int(core.get("min_tokens", 1))),
        webhook_url=os.environ.get("NOTARY_WEBHOOK_URL") or core.get("webhook_url"),
        tsas=[_build(TSAConfig, t, "[[tsa]]") for t in data.get("tsa", [])],
        streams=[_build(StreamConfig, s, "[[stream]]") for s in data.get("stream", [])],
        anchor=_build(AnchorConfig, data.get("anchor", {}), "[anchor]"),
    )
    _validate(settings)
    return settings


def _validate(settings: Settings) -> None:
    if settings.workers < 1:
        raise ConfigError(f"config: workers must be at least 1, got {settings.workers}")
    if settings.min_tokens < 1:
        raise ConfigError(
            f"config: min_tokens must be at least 1, got {settings.min_tokens}"
        )
    names = [tsa.name for tsa in settings.tsas]
    if len(names) != len(set(names)):
        raise ConfigError("config: two [[tsa]] entries share a name")
    streams = [stream.name for stream in settings.streams]
    if len(streams) != len(set(streams)):
        raise ConfigError("config: two [[stream]] entries share a name")
    for stream in settings.streams:
        if stream.hash_algorithm is not None:
            _check_algorithm(stream.hash_algorithm, f"stream {stream.name}")
        settings.tsas_for(stream)


DEFAULT_CONFIG = """\
# notary configuration. Reference: README.md, "Configuration".
# Overridden by NOTARY_* environment variables and by command-line flags.

[notary]
hash_algorithm = "sha256"   # sha256 | sha384 | sha512
workers = 4                 # files hashed in parallel
min_tokens = 1              # verified TSA tokens needed to seal a run (2 recommended)
# database_url = "postgresql+psycopg://notary@127.0.0.1/notary"  # default: notary.db
# webhook_url = "https://ops.example/notary-events"

# The built-in TSA lives in this directory. It is for trying notary out: its tokens
# prove nothing to a third party. Production runs should use independent TSAs:
#
# [[tsa]]
# name = "freetsa"
# url = "https://freetsa.org/tsr"
# trust_roots = ["/etc/notary/freetsa-cacert.pem"]
# auth_env = "FREETSA_AUTH"  # optional: variable holding user:password
[[tsa]]
name = "builtin"
url = "builtin"
trust_roots = ["tsa/ca.pem"]

# Optional EVM anchors (README, "Blockchain anchors"). Deploy the contract with
# `notary anchor deploy --rpc URL`, then fill in what it prints. The signing key comes
# from the NOTARY_ANCHOR_KEY variable, or from an encrypted keystore file whose password
# is in NOTARY_ANCHOR_PASSWORD; never from this file.
#
# [anchor]
# rpc_url = "https://rpc.example.org"
# chain_id = 11155111
# contract = "0x..."
# confirmations = 12
# keystore = "/etc/notary/anchor-keystore.json"
# password_env = "NOTARY_ANCHOR_PASSWORD"
"""


def write_default(home: Path) -> Path:
    """Create ``home`` and write the default config there if absent; return its path."""
    home.mkdir(parents=True, exist_ok=True)
    path = home / CONFIG_NAME
    if not path.exists():
        path.write_text(DEFAULT_CONFIG, encoding="utf-8")
    return path


def resolve(settings: Settings, path: str) -> Path:
    """Resolve a config path; relative paths are relative to the data directory."""
    candidate = Path(path).expanduser()
    return candidate if candidate.is_absolute() else settings.home / candidate
