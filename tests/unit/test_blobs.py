"""Blob pointers: which texts leave an event, and that filling them back gives the original."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from engine.blobs import (
    BLOB_KEY,
    BlobRef,
    as_ref,
    big_texts,
    digest_of,
    filled,
    pointer,
    refs_in,
    swapped,
)

SMALL = 128  # above a pointer's own digest text (71 characters)


def _ref(text: str) -> BlobRef:
    data = text.encode("utf-8")
    return BlobRef(digest_of(data), len(data), 3, (7, 8))


def test_only_texts_at_the_threshold_leave_counted_in_utf8_bytes() -> None:
    ascii_at, ascii_below = "a" * SMALL, "a" * (SMALL - 1)
    wide = "é" * (SMALL // 2)  # half as many characters as bytes
    value = {"x": [ascii_at, ascii_below, {"y": wide}], "n": 10 ** 9, "k": ascii_at}
    assert sorted(big_texts(value, SMALL)) == sorted([ascii_at, wide])  # each once


def test_keys_are_never_offloaded() -> None:
    assert big_texts({"k" * 100: 1}, SMALL) == []


def test_a_pointer_names_digest_size_and_place() -> None:
    ref = _ref("x" * SMALL)
    p = pointer(ref)
    assert p == {BLOB_KEY: ref.digest, "bytes": SMALL, "at": [3, 7, 8]}
    assert as_ref(p) == ref


def test_objects_that_only_look_like_pointers_are_data() -> None:
    ref = pointer(_ref("x" * SMALL))
    for lookalike in ({**ref, "extra": 1}, {**ref, BLOB_KEY: "md5:00"},
                      {**ref, "at": [1]}, {**ref, "bytes": "64"}, {BLOB_KEY: ref[BLOB_KEY]}):
        assert as_ref(lookalike) is None
        assert refs_in({"f": lookalike}) == []


def test_a_value_without_pointers_is_returned_itself() -> None:
    value = {"a": [{"b": "c"}], "d": 1}
    assert filled(value, {}) is value
    assert swapped(value, {}) is value


json_leaf = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=5),
                      st.text(min_size=SMALL, max_size=SMALL * 2))
json_value = st.recursive(json_leaf, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=4), inner, max_size=4)),
    max_leaves=20)


@given(json_value)
def test_filling_the_pointers_back_gives_the_value(value: Any) -> None:
    texts = big_texts(value, SMALL)
    refs = {t: _ref(t) for t in texts}
    stored = swapped(value, {t: pointer(r) for t, r in refs.items()})
    assert big_texts(stored, SMALL) == []  # nothing big is left in what the log holds
    assert sorted(r.digest for r in refs_in(stored)) == \
        sorted(r.digest for t, r in refs.items() for _ in range(_count(value, t)))
    assert filled(stored, {r.digest: t for t, r in refs.items()}) == value


def _count(value: Any, text: str) -> int:
    if value == text and type(value) is str:
        return 1
    if type(value) is dict:
        return sum(_count(v, text) for v in value.values())
    if type(value) is list:
        return sum(_count(v, text) for v in value)
    return 0
