from datetime import date, datetime

import pytest

from notary import period
from notary.errors import ConfigError, UsageError


@pytest.mark.parametrize(
    "bad", ["2026-13", "2026-1", "26-01", "2026-00", "", "2026/01"]
)
def test_parse_malformed_period_rejected(bad: str) -> None:
    with pytest.raises(UsageError, match="expected YYYY-MM"):
        period.parse(bad)


def test_previous_january_wraps_year() -> None:
    assert period.previous("2026-01") == "2025-12"


def test_following_december_wraps_year() -> None:
    assert period.following("2025-12") == "2026-01"


def test_last_finished_is_previous_month() -> None:
    assert period.last_finished(date(2026, 3, 1)) == "2026-02"


def test_between_spans_year_end() -> None:
    assert period.between("2025-11", "2026-02") == [
        "2025-11",
        "2025-12",
        "2026-01",
        "2026-02",
    ]


def test_fill_template_formats_first_day() -> None:
    assert (
        period.fill("s3://b/AWSLogs/{period:%Y/%m}/", "2026-10")
        == "s3://b/AWSLogs/2026/10/"
    )


def test_fill_unknown_placeholder_rejected() -> None:
    with pytest.raises(ConfigError, match="source template"):
        period.fill("/srv/{month}/", "2026-10")


def test_of_datetime_gives_its_month() -> None:
    assert period.of(datetime(2026, 12, 31, 23, 59)) == "2026-12"
