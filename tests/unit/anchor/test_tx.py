"""Fees and the reading of node answers."""

from __future__ import annotations

import pytest

from notary.anchor.tx import Fees, Outcome, classify


def test_fees_bumped_raises_both_by_an_eighth() -> None:
    fees = Fees(max_fee=3_000_000_000, priority=1_000_000_000)

    bumped = fees.bumped()

    assert bumped == Fees(3_375_000_000, 1_125_000_000)


def test_fees_bumped_tiny_values_still_rise() -> None:
    assert Fees(1, 1).bumped() == Fees(2, 2)


def test_fees_at_least_keeps_market_when_higher() -> None:
    assert Fees(10, 2).at_least(Fees(20, 1)) == Fees(20, 2)


def test_fees_legacy_bump_keeps_no_priority() -> None:
    assert Fees(80, None).bumped() == Fees(90, None)


@pytest.mark.parametrize(
    ("message", "outcome"),
    [
        ("nonce too low", Outcome.NONCE_TOO_LOW),
        ("Nonce too low: next nonce 5, tx nonce 4", Outcome.NONCE_TOO_LOW),
        ("Invalid transaction nonce: Expected 2, but got 1", Outcome.NONCE_TOO_LOW),
        ("Invalid transaction nonce: Expected 2, but got 4", Outcome.NONCE_TOO_HIGH),
        ("already known", Outcome.KNOWN),
        ("transaction already imported", Outcome.KNOWN),
        ("replacement transaction underpriced", Outcome.UNDERPRICED),
        ("insufficient funds for gas * price + value", Outcome.REJECTED),
    ],
)
def test_classify_node_messages(message: str, outcome: Outcome) -> None:
    assert classify(message) is outcome
