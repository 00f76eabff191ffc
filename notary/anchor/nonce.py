"""Nonces for one sender on one chain, shared by every thread of the process."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from web3 import Web3


class NonceManager:
    """Hand out nonces of ``address`` so that concurrent anchors never collide.

    The proposal is the higher of the node's pending transaction count and one past the
    last nonce handed out here; the caller's ``adjust`` may raise it (past nonces it has
    persisted for this sender: transactions saved by another process but not yet seen
    by the node, or nonces its records already hold after a chain reset). The lock is
    held while the caller signs, persists and broadcasts, so transactions reach the node
    in nonce order.
    """

    def __init__(self, w3: Web3, address: str) -> None:
        self._w3 = w3
        self._address = Web3.to_checksum_address(address)
        self._next = 0
        self._lock = threading.Lock()

    @contextmanager
    def reserve(self, adjust: Callable[[int], int] | None = None) -> Iterator[int]:
        """Yield the next nonce, holding the lock; it counts as used only on success.

        ``adjust(proposed)`` is called under the lock and returns the nonce to use
        (never lower than ``proposed``). Raises what the node raises for the pending
        count (web3 errors).
        """
        with self._lock:
            pending = int(self._w3.eth.get_transaction_count(self._address, "pending"))
            nonce = max(pending, self._next)
            if adjust is not None:
                nonce = max(nonce, adjust(nonce))
            yield nonce
            self._next = max(self._next, nonce + 1)
