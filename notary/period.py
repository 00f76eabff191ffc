"""Periods: the calendar months that identify runs (``YYYY-MM``).

The period, not the wall clock, identifies a run, so time zones and DST never change
what a run attests. A source template such as ``/srv/snapshots/{period:%Y-%m}/`` is
filled with the first day of the period.
"""

from __future__ import annotations

import re
from datetime import date, datetime

from notary.errors import ConfigError, UsageError

PERIOD_RE = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


def parse(period: str) -> date:
    """Return the first day of a ``YYYY-MM`` period; raises UsageError otherwise."""
    match = PERIOD_RE.match(period)
    if not match or int(match.group(1)) < 1:
        raise UsageError(
            f"period: expected YYYY-MM, got {period!r}",
            period=period,
            hint="e.g. 2026-11",
        )
    return date(int(match.group(1)), int(match.group(2)), 1)


def of(day: date | datetime) -> str:
    """Return the period containing ``day``."""
    return f"{day.year:04d}-{day.month:02d}"


def previous(period: str) -> str:
    first = parse(period)
    if first.month == 1:
        return f"{first.year - 1:04d}-12"
    return f"{first.year:04d}-{first.month - 1:02d}"


def following(period: str) -> str:
    first = parse(period)
    if first.month == 12:
        return f"{first.year + 1:04d}-01"
    return f"{first.year:04d}-{first.month + 1:02d}"


def last_finished(now: date | datetime) -> str:
    """Return the last calendar month that has ended at ``now`` (the previous month)."""
    return previous(of(now))


def between(first: str, last: str) -> list[str]:
    """Return every period from ``first`` to ``last`` inclusive (empty if reversed)."""
    periods: list[str] = []
    current = first
    parse(last)
    while current <= last:
        periods.append(current)
        current = following(current)
    return periods


def fill(template: str, period: str) -> str:
    """Fill ``{period:<strftime>}`` placeholders of a source template.

    Raises ConfigError for a template with other placeholders or bad braces.
    """
    try:
        return template.format(
            period=datetime.combine(parse(period), datetime.min.time())
        )
    except (KeyError, IndexError, ValueError) as exc:
        raise ConfigError(
            f"source template {template!r}: {exc}",
            hint="use {period:%Y-%m} or {period:%Y/%m}",
        ) from exc
