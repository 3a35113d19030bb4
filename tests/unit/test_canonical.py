"""Canonical JSON: the bytes every hash of the ledger is computed over."""

from __future__ import annotations

import hashlib
import json
import math
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.canonical import canonical_bytes, canonical_text, sha256_hex, state_hash
from engine.errors import CanonicalJSONError

# JSON values without floats' textual ambiguity and without whitespace in any string,
# so "no whitespace" can be checked on the whole text.
_no_space = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Zs", "Zl", "Zp", "Cc")),
                    max_size=8)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | _no_space
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_no_space, inner, max_size=4),
    max_leaves=20,
)


def test_keys_are_sorted_at_every_depth_and_there_is_no_whitespace() -> None:
    value = {"b": 1, "a": {"d": [3, {"z": None, "y": True}], "c": "x"}}

    assert canonical_text(value) == '{"a":{"c":"x","d":[3,{"y":true,"z":null}]},"b":1}'


def test_non_ascii_is_written_as_itself_in_utf8() -> None:
    value = {"name": "Zürich ✓ 😀"}

    assert canonical_bytes(value) == '{"name":"Zürich ✓ 😀"}'.encode()
    assert b"\\u" not in canonical_bytes(value)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_nan_and_infinities_are_refused(bad: float) -> None:
    with pytest.raises(CanonicalJSONError):
        canonical_text({"deep": [1, {"x": bad}]})
    with pytest.raises(CanonicalJSONError):
        canonical_bytes(bad)


@pytest.mark.parametrize("bad", [{1, 2}, object(), b"bytes", {"k": (lambda: 1)}])
def test_values_without_a_json_form_are_refused(bad: object) -> None:
    with pytest.raises(CanonicalJSONError):
        canonical_bytes({"v": bad})


def test_a_lone_surrogate_has_no_utf8_form_and_is_refused() -> None:
    # JSON text exists but its UTF-8 bytes do not: must be our error, not UnicodeEncodeError.
    with pytest.raises(CanonicalJSONError):
        canonical_bytes({"v": "\ud800"})
    with pytest.raises(CanonicalJSONError):
        canonical_text("\udfff")


def test_state_hash_is_sha256_of_the_canonical_bytes() -> None:
    state = {"b": [1, 2], "a": "é"}
    expected = hashlib.sha256('{"a":"é","b":[1,2]}'.encode()).hexdigest()

    assert state_hash(state) == expected
    assert sha256_hex(b"") == hashlib.sha256(b"").hexdigest()


@given(json_values)
def test_canonical_text_round_trips_and_is_a_fixed_point(value: object) -> None:
    text = canonical_text(value)

    assert json.loads(text) == value
    assert canonical_text(json.loads(text)) == text
    assert canonical_bytes(value) == text.encode("utf-8")


@given(json_values)
def test_canonical_text_has_no_whitespace_outside_strings(value: object) -> None:
    text = canonical_text(value)  # strategy strings hold no whitespace

    assert not any(ch.isspace() for ch in text)


@given(st.dictionaries(_no_space, st.integers(), max_size=8), st.randoms())
def test_insertion_order_of_keys_does_not_matter(mapping: dict[str, int],
                                                 rnd: random.Random) -> None:
    items = list(mapping.items())
    rnd.shuffle(items)

    assert canonical_bytes(dict(items)) == canonical_bytes(mapping)
