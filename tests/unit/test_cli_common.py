import pytest

from notary.cli._common import printable


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("x\r\x1b[2Kverdict: VALID", "x\\x0d\\x1b[2Kverdict: VALID"),
        ("a\nb", "a\\x0ab"),
        ("evil\u202etxt.exe", "evil\\u202etxt.exe"),
        ("caf\u00e9/\u00fcber.log", "caf\u00e9/\u00fcber.log"),
        ("bad\\xff", "bad\\xff"),
    ],
)
def test_printable_escapes_controls_keeps_letters(text: str, shown: str) -> None:
    assert printable(text) == shown
