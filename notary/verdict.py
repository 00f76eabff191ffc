"""Verdicts and named checks shared by every verifier: tokens, proofs, anchors."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from notary.errors import EXIT_INDETERMINATE, EXIT_INVALID, EXIT_OK


class Verdict(enum.StrEnum):
    VALID = "valid"
    INVALID = "invalid"
    INDETERMINATE = "indeterminate"

    @property
    def exit_code(self) -> int:
        return {
            Verdict.VALID: EXIT_OK,
            Verdict.INVALID: EXIT_INVALID,
            Verdict.INDETERMINATE: EXIT_INDETERMINATE,
        }[self]


@dataclass
class Check:
    """One named rule and its outcome.

    ``ok`` is True (passed), False (failed: invalid) or None (undecidable:
    indeterminate). ``warning`` marks a passed check that deserves attention (e.g. a
    weak algorithm).
    """

    name: str
    ok: bool | None
    detail: str = ""
    item: str | None = None
    warning: bool = False
    facts: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"name": self.name, "ok": self.ok, "detail": self.detail}
        if self.item is not None:
            data["item"] = self.item
        if self.warning:
            data["warning"] = True
        if self.facts:
            data["facts"] = self.facts
        return data


def combine(checks: Iterable[Check]) -> Verdict:
    """Return invalid if any check failed, else indeterminate if any is undecided."""
    outcomes = [check.ok for check in checks]
    if False in outcomes:
        return Verdict.INVALID
    if None in outcomes:
        return Verdict.INDETERMINATE
    return Verdict.VALID
