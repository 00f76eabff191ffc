"""The signing key for anchors: from the environment or an encrypted keystore file.

The key never comes from the config file, never reaches a log line or an error message
(only the account address does), and is never written anywhere by notary.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount

from notary.config import AnchorConfig
from notary.errors import ConfigError

logger = logging.getLogger(__name__)


def load_account(config: AnchorConfig, home: Path | None = None) -> LocalAccount | None:
    """Return the configured signing account, or None when none is configured.

    A ``keystore`` (relative paths are relative to ``home``) wins over ``key_env``.
    Raises ConfigError for an unreadable keystore, a wrong or missing password, or a
    malformed key; messages never contain the key or the password.
    """
    if config.keystore:
        path = Path(config.keystore).expanduser()
        if not path.is_absolute() and home is not None:
            path = home / path
        account = _from_keystore(path, config.password_env)
    else:
        raw = os.environ.get(config.key_env, "").strip()
        if not raw:
            return None
        account = _from_hex(raw, config.key_env)
    logger.debug("anchor: signing as %s", account.address)
    return account


def _from_hex(raw: str, variable: str) -> LocalAccount:
    try:
        account: LocalAccount = Account.from_key(raw)
    except (ValueError, TypeError):
        # NOTE: from None: the foreign error's text may echo the key.
        raise ConfigError(
            f"anchor: {variable} does not hold a valid hex private key",
            variable=variable,
        ) from None
    return account


def _from_keystore(path: Path, password_env: str) -> LocalAccount:
    password = os.environ.get(password_env)
    if password is None:
        raise ConfigError(
            f"anchor: keystore {path.name} needs its password in {password_env}",
            variable=password_env,
        )
    try:
        document = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"anchor: cannot read keystore {path}: {type(exc).__name__}", path=str(path)
        ) from None
    try:
        key = Account.decrypt(document, password)
    except (ValueError, TypeError, KeyError):
        raise ConfigError(
            f"anchor: cannot decrypt keystore {path.name} (wrong password in "
            f"{password_env}, or not a keystore file)",
            path=str(path),
        ) from None
    account: LocalAccount = Account.from_key(key)
    return account
