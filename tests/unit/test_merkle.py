from __future__ import annotations

import hashlib
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from notary import merkle
from notary.errors import (
    DigestLengthError,
    LeafNotFoundError,
    NoItemsError,
    ProofError,
    UnsupportedAlgorithmError,
)


def h(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def items_of(count: int, seed: int = 0) -> list[tuple[bytes, bytes]]:
    """Return ``count`` (content_digest, record_digest) pairs, reproducibly."""
    rng = random.Random(seed)
    return [(rng.randbytes(32), rng.randbytes(32)) for _ in range(count)]


def tree_of(items: list[tuple[bytes, bytes]]) -> merkle.HashTree:
    return merkle.HashTree("sha256", merkle.leaf_hashes("sha256", items))


def proof_of(tree: merkle.HashTree, item: tuple[bytes, bytes]) -> list[bytes]:
    return tree.proof(merkle.leaf_hash("sha256", *item))


def flip(value: bytes, bit: int) -> bytes:
    changed = bytearray(value)
    changed[bit // 8 % len(value)] ^= 1 << (bit % 8)
    return bytes(changed)


# known answers, computed by hand from hashlib alone -----------------------------------

KAT_ITEMS = [(h(b"content %d" % i), h(b"record %d" % i)) for i in range(5)]
KAT_ROOTS = {
    1: "9c4097b8ec370047bdd9d7d78384a97aa46a5c754c24edda772eb55b73f0e7fa",
    2: "e1b522847100b092ea98fb43d202ef980d66b7d58c032657ae80cb2b78692776",
    3: "d0c8b64ea609d7b8bc80d52201783b7bb721d9b4eaef54cfbdfd1c4a453c350b",
    5: "f9cce9b8b9b7b07eef2cb15a8e401901f035fcf019417a57f35efd7b13e39d5e",
}


def kat_leaves(count: int) -> list[bytes]:
    return sorted(h(b"".join(sorted(pair))) for pair in KAT_ITEMS[:count])


def test_tree_one_leaf_root_is_the_leaf() -> None:
    (leaf,) = kat_leaves(1)

    tree = tree_of(KAT_ITEMS[:1])

    assert tree.root == leaf
    assert tree.root.hex() == KAT_ROOTS[1]
    assert tree.proof(leaf) == []


def test_tree_two_leaves_root_hashes_the_sorted_pair() -> None:
    a, b = kat_leaves(2)

    tree = tree_of(KAT_ITEMS[:2])

    assert tree.root == h(a + b)
    assert tree.root.hex() == KAT_ROOTS[2]
    assert tree.proof(a) == [b]
    assert tree.proof(b) == [a]


def test_tree_three_leaves_odd_leaf_is_carried_up() -> None:
    a, b, c = kat_leaves(3)
    ab = h(min(a, b) + max(a, b))

    tree = tree_of(KAT_ITEMS[:3])

    assert tree.root == h(min(ab, c) + max(ab, c))
    assert tree.root.hex() == KAT_ROOTS[3]
    assert tree.proof(c) == [ab]
    assert tree.proof(a) == [b, c]


def test_tree_five_leaves_root_matches_hand_computation() -> None:
    s = kat_leaves(5)
    ab, cd = h(s[0] + s[1]), h(s[2] + s[3])
    abcd = h(min(ab, cd) + max(ab, cd))

    tree = tree_of(KAT_ITEMS)

    assert tree.root == h(min(abcd, s[4]) + max(abcd, s[4]))
    assert tree.root.hex() == KAT_ROOTS[5]
    assert tree.proof(s[4]) == [abcd]
    assert tree.proof(s[2]) == [s[3], ab, s[4]]


def test_leaf_hash_group_order_does_not_matter() -> None:
    content, record = KAT_ITEMS[0]

    forward = merkle.leaf_hash("sha256", content, record)

    assert forward == merkle.leaf_hash("sha256", record, content)
    assert forward == h(merkle.sortcat(content, record))


# properties ---------------------------------------------------------------------------


def test_proof_every_size_1_to_300_every_item_checks() -> None:
    for size in range(1, 301):
        items = items_of(size, seed=size)
        tree = tree_of(items)

        for item in items:
            siblings = proof_of(tree, item)
            assert merkle.check_proof("sha256", list(item), siblings, tree.root), size
            assert len(siblings) <= (size - 1).bit_length()


@settings(max_examples=200, deadline=None)
@given(
    size=st.integers(min_value=1, max_value=64),
    pick=st.integers(min_value=0),
    part=st.sampled_from(["content", "record", "sibling", "root"]),
    bit=st.integers(min_value=0, max_value=32 * 8 - 1),
)
def test_proof_any_changed_bit_fails(size: int, pick: int, part: str, bit: int) -> None:
    items = items_of(size, seed=size)
    tree = tree_of(items)
    content, record = items[pick % size]
    siblings = proof_of(tree, (content, record))
    root = tree.root
    if part == "content":
        content = flip(content, bit)
    elif part == "record":
        record = flip(record, bit)
    elif part == "root":
        root = flip(root, bit)
    elif siblings:
        n = pick % len(siblings)
        siblings[n] = flip(siblings[n], bit)
    else:
        content = flip(content, bit)

    assert not merkle.check_proof("sha256", [content, record], siblings, root)


@settings(max_examples=50, deadline=None)
@given(size=st.integers(min_value=1, max_value=100), order=st.randoms())
def test_tree_leaf_order_does_not_change_root(size: int, order: random.Random) -> None:
    leaves = merkle.leaf_hashes("sha256", items_of(size, seed=size))
    shuffled = leaves[:]
    order.shuffle(shuffled)

    assert (
        merkle.HashTree("sha256", shuffled).root == tree_of(items_of(size, size)).root
    )


def test_tree_6567_items_every_proof_checks() -> None:
    items = items_of(6567, seed=6567)

    tree = tree_of(items)

    assert tree.size == 6567
    assert all(
        merkle.check_proof("sha256", list(item), proof_of(tree, item), tree.root)
        for item in items
    )


def test_tree_leaves_sharing_first_byte_are_sorted_bytewise() -> None:
    leaves = [b"\x07" + bytes([i]) * 31 for i in (9, 3, 200, 0, 17)]

    tree = merkle.HashTree("sha256", leaves)

    assert [tree.leaf(i) for i in range(5)] == sorted(leaves)


@pytest.mark.parametrize(("algorithm", "size"), [("sha384", 48), ("sha512", 64)])
def test_tree_other_algorithms_proofs_check(algorithm: str, size: int) -> None:
    rng = random.Random(size)
    items = [(rng.randbytes(size), rng.randbytes(size)) for _ in range(37)]
    tree = merkle.HashTree(algorithm, merkle.leaf_hashes(algorithm, items))

    for item in items:
        siblings = tree.proof(merkle.leaf_hash(algorithm, *item))
        assert merkle.check_proof(algorithm, list(item), siblings, tree.root)
    assert len(tree.root) == size == merkle.digest_size(algorithm)


# chain --------------------------------------------------------------------------------


def test_chain_leaf_is_hash_of_previous_root() -> None:
    previous = bytes(32)

    leaf = merkle.chain_leaf("sha256", previous)

    assert leaf.hex() == (
        "66687aadf862bd776c8fc18b8e9f8e20089714856ee233b3902a591d0d5f2925"
    )


def test_chain_leaf_in_tree_proof_from_leaf_group_checks() -> None:
    previous = hashlib.sha512(b"last month").digest()
    chain = merkle.chain_leaf("sha256", previous)
    tree = merkle.HashTree(
        "sha256", [*merkle.leaf_hashes("sha256", items_of(9)), chain]
    )

    siblings = tree.proof(chain)

    assert merkle.check_proof("sha256", [chain], siblings, tree.root)
    assert not merkle.check_proof("sha256", [previous[:32]], siblings, tree.root)


def test_chain_leaf_bad_previous_root_length_raises() -> None:
    with pytest.raises(DigestLengthError, match="previous root: 20 bytes"):
        merkle.chain_leaf("sha256", bytes(20))


# bad input ----------------------------------------------------------------------------


def test_tree_duplicate_leaf_raises_proof_error() -> None:
    leaves = merkle.leaf_hashes("sha256", items_of(4))

    with pytest.raises(ProofError, match=f"leaf {leaves[2].hex()} given twice"):
        merkle.HashTree("sha256", [*leaves, leaves[2]])


def test_tree_no_leaves_raises_no_items() -> None:
    with pytest.raises(NoItemsError, match="no leaves"):
        merkle.HashTree("sha256", [])


def test_tree_wrong_leaf_length_raises() -> None:
    with pytest.raises(DigestLengthError, match=r"leaves of \[31, 32\] bytes"):
        merkle.HashTree("sha256", [bytes(32), bytes(31)])


def test_tree_proof_of_absent_leaf_raises_not_found() -> None:
    tree = tree_of(items_of(5))
    absent = h(b"absent")

    with pytest.raises(LeafNotFoundError, match=f"leaf {absent.hex()} not found"):
        tree.proof(absent)
    assert absent not in tree
    assert tree.leaf(0) in tree


def test_unknown_algorithm_raises_unsupported() -> None:
    with pytest.raises(UnsupportedAlgorithmError, match="'sha1': not supported"):
        merkle.digest("sha1", b"")


@pytest.mark.parametrize(
    ("group", "siblings"),
    [
        ([], []),
        ([bytes(31)], []),
        ([bytes(32), bytes(32)], [bytes(33)]),
        (["not bytes"], []),
        ([bytes(48)], [bytes(48)]),
    ],
)
def test_check_proof_malformed_input_is_false(
    group: list[bytes], siblings: list[bytes]
) -> None:
    assert merkle.check_proof("sha256", group, siblings, bytes(32)) is False


def test_root_from_proof_malformed_sibling_raises_proof_error() -> None:
    with pytest.raises(ProofError, match="sibling 1 is not a sha256 digest"):
        merkle.root_from_proof("sha256", [bytes(32)], [bytes(32), b"short"])
