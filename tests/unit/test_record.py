from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from notary import record

SALT = "0" * 32

# Names from real reports of ambiguous encodings: separators, quotes, escapes, control
# characters, both Unicode normal forms of one name, and bytes that are not UTF-8.
TRICKY_NAMES = [
    b"a/b",
    b"a\\b",
    b"a\\/b",
    b'a"b',
    b"a'b",
    b"a\nb",
    b"a\\nb",
    b"a\rb",
    b"a\tb",
    b"a\x00b",
    b"a b",
    b"a,b",
    b"a:b",
    b"a\\u002fb",
    unicodedata.normalize("NFC", "caf\u00e9").encode(),
    unicodedata.normalize("NFD", "caf\u00e9").encode(),
    b"caf\xe9",
    b"caf\xc3",
    b"\xff\xfe",
    b"fffe",
    b"\xed\xa0\x80",
    "\U0001f600".encode(),
]


def file_record(name: bytes, **extra: record.Value) -> dict[str, record.Value]:
    fields: dict[str, record.Value] = {"v": 1, "kind": "file", "size": 3, "salt": SALT}
    return {**fields, **record.name_fields("path", name), **extra}


def test_encode_tricky_names_all_distinct() -> None:
    encoded = {record.encode(file_record(name)) for name in TRICKY_NAMES}

    assert len(encoded) == len(set(TRICKY_NAMES))


@pytest.mark.parametrize("name", TRICKY_NAMES)
def test_encode_tricky_name_round_trips_exact_bytes(name: bytes) -> None:
    encoded = record.encode(file_record(name))

    assert record.name_bytes(record.decode(encoded)) == name
    assert encoded.isascii()


def test_name_fields_non_utf8_stored_as_hex() -> None:
    assert record.name_fields("path", b"caf\xe9") == {"path_hex": "636166e9"}
    assert record.name_fields("path", "café".encode()) == {"path": "café"}


def test_encode_nfc_and_nfd_forms_differ() -> None:
    nfc = unicodedata.normalize("NFC", "café").encode()
    nfd = unicodedata.normalize("NFD", "café").encode()

    assert record.encode(file_record(nfc)) != record.encode(file_record(nfd))


def test_encode_keys_sorted_no_whitespace() -> None:
    encoded = record.encode({"z": 1, "a": None, "m": True, "path": "x y"})

    assert encoded == b'{"a":null,"m":true,"path":"x y","z":1}'


def test_encode_float_value_raises_type_error() -> None:
    with pytest.raises(TypeError, match="record field 'size': unsupported type float"):
        record.encode({"size": 1.5})  # type: ignore[dict-item]


@given(st.binary(max_size=40), st.binary(max_size=40))
def test_encode_distinct_names_distinct_bytes(first: bytes, second: bytes) -> None:
    one = record.encode(file_record(first))
    two = record.encode(file_record(second))

    assert (one == two) == (first == second)
    assert record.name_bytes(record.decode(one)) == first


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ('{"b":1,"a":2}', "not in canonical form"),
        ('{"a": 1}', "not in canonical form"),
        ('{"a":"\\u00E9"}', "not in canonical form"),
        ('{"a":"\\/"}', "not in canonical form"),
        ('{"a":1,"a":1}', "not in canonical form"),
        ('{"a":1.0}', "not flat"),
        ('{"a":[1]}', "not flat"),
        ('{"a":NaN}', "not flat"),
        ("[1]", "not a JSON object"),
    ],
)
def test_decode_non_canonical_raises(text: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        record.decode(text.encode("ascii"))


def test_decode_non_ascii_raises() -> None:
    with pytest.raises(ValueError, match="ascii"):
        record.decode('{"a":"é"}')


def test_name_bytes_missing_name_raises_key_error() -> None:
    with pytest.raises(KeyError, match="path_hex"):
        record.name_bytes({"v": 1})


def test_display_name_undecodable_bytes_escaped() -> None:
    assert record.display_name(b"caf\xe9/x") == "caf\\xe9/x"


def test_new_salt_is_32_lowercase_hex() -> None:
    salt = record.new_salt()

    assert len(salt) == 32
    assert salt == salt.lower()
    assert salt != record.new_salt()
    int(salt, 16)
