"""Connections to an EVM chain: the in-process eth-tester chain or a JSON-RPC node.

``builtin`` is an eth-tester chain (py-evm) living inside this process only: it lets the
demo and the tests anchor with no node, and it proves nothing to third parties — nobody
else can ever see it, and it vanishes when the process exits. Any other value is the URL
of a JSON-RPC node (http or https); URLs often carry an API key, so only their host ever
reaches a log line or a message.
"""

from __future__ import annotations

import functools
import json
import logging
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import requests
from eth_utils.exceptions import ValidationError as EthUtilsValidationError
from web3 import Web3
from web3.contract import Contract
from web3.exceptions import Web3Exception
from web3.providers.eth_tester import EthereumTesterProvider
from web3.types import RPCEndpoint, RPCResponse

from notary.anchor.nonce import NonceManager
from notary.anchor.receipt import LOCAL_CHAIN_IDS, anchored_value
from notary.errors import AnchorError, ConfigError

if TYPE_CHECKING:
    from eth_tester import EthereumTester

logger = logging.getLogger(__name__)

BUILTIN = "builtin"
LOCAL_LABEL = "local chain, proves nothing to third parties"
ARTEFACT = "RootRegistry.json"
DEFAULT_RPC_TIMEOUT = 30.0


def _foreign_errors() -> tuple[type[Exception], ...]:
    errors: list[type[Exception]] = [
        Web3Exception,
        requests.RequestException,
        ValueError,
        OSError,
        EthUtilsValidationError,  # py-evm (the builtin chain) refusing a transaction
    ]
    try:
        from eth_tester.exceptions import ValidationError
    except ImportError:  # pragma: no cover - eth-tester is an optional dependency
        return tuple(errors)
    return (*errors, ValidationError)


# Errors raised by web3, its transports or eth-tester for one failed call.
RPC_ERRORS = _foreign_errors()

__all__ = ["LOCAL_CHAIN_IDS", "RPC_ERRORS", "Chain", "anchored_value", "connect"]


@dataclass
class Chain:
    """A connected chain: the web3 handle, its chain id and a log-safe label."""

    w3: Web3
    chain_id: int
    label: str
    tester: EthereumTester | None = None
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    registry_address: str | None = None
    _nonces: dict[str, NonceManager] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def is_builtin(self) -> bool:
        return self.tester is not None

    @property
    def is_local(self) -> bool:
        """Return True for chains that no third party witnesses (builtin, dev nodes)."""
        return self.is_builtin or self.chain_id in LOCAL_CHAIN_IDS

    def nonces(self, address: str) -> NonceManager:
        """Return the one nonce manager of ``address`` on this chain (thread-safe)."""
        key = address.lower()
        with self._lock:
            if key not in self._nonces:
                self._nonces[key] = NonceManager(self.w3, address)
            return self._nonces[key]


class _LockedTesterProvider(EthereumTesterProvider):
    """An eth-tester provider safe to share between threads (py-evm is not)."""

    def __init__(self, tester: EthereumTester) -> None:
        super().__init__(tester)
        self._lock = threading.RLock()

    def make_request(self, method: RPCEndpoint, params: Any) -> RPCResponse:
        with self._lock:
            return super().make_request(method, params)


def rpc_host(url: str) -> str:
    """Return ``host[:port]`` of an RPC URL: safe to log (no path, query, password)."""
    if url == BUILTIN:
        return BUILTIN
    parts = urlsplit(url)
    host = parts.hostname or "?"
    return f"{host}:{parts.port}" if parts.port else host


def new_builtin_chain() -> Chain:
    """Start a fresh in-process eth-tester chain (auto-mining on).

    Raises ConfigError when eth-tester with py-evm is not installed.
    """
    try:
        from eth_tester import EthereumTester, PyEVMBackend
    except ImportError as exc:
        raise ConfigError(
            "anchor: the builtin chain needs eth-tester with py-evm",
            hint="pip install 'notary[evm]', or set [anchor] rpc_url to a node",
        ) from exc
    tester = EthereumTester(PyEVMBackend())
    w3 = Web3(_LockedTesterProvider(tester))
    label = f"builtin chain ({LOCAL_LABEL})"
    return Chain(w3=w3, chain_id=int(w3.eth.chain_id), label=label, tester=tester)


_builtin_lock = threading.Lock()
_builtin: Chain | None = None


def builtin_chain() -> Chain:
    """Return this process's builtin chain, starting it on first use (thread-safe)."""
    global _builtin
    with _builtin_lock:
        if _builtin is None:
            _builtin = new_builtin_chain()
            logger.info("anchor: started the builtin chain (%s)", LOCAL_LABEL)
        return _builtin


def connect(
    rpc_url: str, chain_id: int | None = None, timeout: float = DEFAULT_RPC_TIMEOUT
) -> Chain:
    """Connect to ``rpc_url`` (or the builtin chain) and check its chain id.

    Raises AnchorError when the node cannot be reached, ConfigError when it serves
    another chain than ``chain_id`` (None: any chain).
    """
    chain = builtin_chain() if rpc_url == BUILTIN else _cached_rpc(rpc_url, timeout)
    if chain_id is not None and chain.chain_id != chain_id:
        raise ConfigError(
            f"anchor: {chain.label} serves chain {chain.chain_id}, expected {chain_id}",
            hint="check [anchor] chain_id and rpc_url",
            chain_id=chain.chain_id,
            expected=chain_id,
        )
    return chain


_rpc_lock = threading.Lock()
_rpc_chains: dict[str, Chain] = {}


def _cached_rpc(rpc_url: str, timeout: float) -> Chain:
    # One Chain per URL and process, so every thread shares its nonce managers.
    with _rpc_lock:
        if rpc_url not in _rpc_chains:
            _rpc_chains[rpc_url] = _connect_rpc(rpc_url, timeout)
        return _rpc_chains[rpc_url]


def _connect_rpc(rpc_url: str, timeout: float) -> Chain:
    host = rpc_host(rpc_url)
    if urlsplit(rpc_url).scheme not in ("http", "https"):
        raise ConfigError(
            f"anchor: unsupported RPC URL scheme for {host}",
            hint="use an http(s) JSON-RPC URL or 'builtin'",
        )
    provider = Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": timeout})
    w3 = Web3(provider)
    try:
        chain_id = int(w3.eth.chain_id)
    except RPC_ERRORS as exc:
        raise AnchorError(
            f"anchor: cannot reach the RPC node at {host}: {type(exc).__name__}",
            hint="check [anchor] rpc_url and that the node is up",
            host=host,
        ) from None
    label = f"{host} (chain {chain_id})"
    logger.debug("anchor: connected to %s", label)
    return Chain(w3=w3, chain_id=chain_id, label=label)


@functools.cache
def load_artefact() -> dict[str, Any]:
    """Return the compiled RootRegistry artefact shipped with notary (abi, bytecode)."""
    text = resources.files("notary.anchor").joinpath(ARTEFACT).read_text("utf-8")
    artefact: dict[str, Any] = json.loads(text)
    return artefact


def registry(chain: Chain, address: str) -> Contract:
    """Return the RootRegistry contract at ``address`` on ``chain``."""
    abi = load_artefact()["abi"]
    return chain.w3.eth.contract(address=Web3.to_checksum_address(address), abi=abi)
