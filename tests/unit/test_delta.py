"""Deltas: the generic patch operations any reader folds without the graph's code."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.canonical import canonical_bytes
from engine.delta import append_op, diff, fold, merge_op, set_op, unset_op
from engine.errors import DeltaError

# Values Python calls equal although their JSON differs (1, 1.0, True; 0.0, -0.0) are
# drawn often on purpose: a diff that compares with == drops such changes.
_tricky = st.sampled_from([0, 1, 0.0, -0.0, 1.0, True, False, None, "", "1"])
_scalars = _tricky | st.integers() | st.floats(allow_nan=False, allow_infinity=False) \
    | st.text(max_size=3)
_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=2), inner,
                                                                  max_size=3),
    max_leaves=8,
)
_states = st.dictionaries(st.sampled_from(["a", "b", "c", "d", "é"]), _values, max_size=5)


def _twins(value: Any) -> list[Any]:
    """Values that are == `value` in Python (0, 0.0, -0.0, False; 1, 1.0, True)."""
    if isinstance(value, int | float) and value in (0, 1):
        return [int(value), float(value), bool(value)] + ([-0.0] if value == 0 else [])
    return [value]


@st.composite
def _state_pairs(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, Any]]:
    """(before, after) where each field is kept, dropped, changed or swapped for a twin."""
    before = draw(_states)
    after: dict[str, Any] = {}
    for key, value in before.items():
        fate = draw(st.sampled_from(["keep", "drop", "change", "twin"]))
        if fate == "keep":
            after[key] = value
        elif fate == "change":
            after[key] = draw(_values)
        elif fate == "twin":
            after[key] = draw(st.sampled_from(_twins(value)))
    return before, {**draw(_states), **after}


def test_set_replaces_or_creates_a_field() -> None:
    assert fold({"a": 1, "b": 2}, [set_op("a", [9]), set_op("c", None)]) == \
        {"a": [9], "b": 2, "c": None}


def test_append_extends_a_list_and_creates_a_missing_one() -> None:
    state = fold({"msgs": ["hi"]}, [append_op("msgs", ["a", "b"]), append_op("new", [1])])

    assert state == {"msgs": ["hi", "a", "b"], "new": [1]}


def test_merge_updates_keys_and_creates_a_missing_object() -> None:
    state = fold({"cfg": {"x": 1, "y": 2}}, [merge_op("cfg", {"y": 3, "z": 4}),
                                            merge_op("new", {"k": "v"})])

    assert state == {"cfg": {"x": 1, "y": 3, "z": 4}, "new": {"k": "v"}}


def test_unset_removes_a_field_and_ignores_a_missing_one() -> None:
    assert fold({"a": 1, "b": 2}, [unset_op("a"), unset_op("never")]) == {"b": 2}


def test_operations_apply_in_order() -> None:
    delta = [set_op("a", [1]), append_op("a", [2]), unset_op("a"), append_op("a", [3])]

    assert fold({}, delta) == {"a": [3]}


def test_fold_never_mutates_its_input() -> None:
    before = {"msgs": ["hi"], "cfg": {"x": 1}}
    fold(before, [append_op("msgs", ["x"]), merge_op("cfg", {"y": 2}), unset_op("msgs")])

    assert before == {"msgs": ["hi"], "cfg": {"x": 1}}


@pytest.mark.parametrize(
    ("state", "delta"),
    [
        ({}, [{"op": "replace", "field": "a", "value": 1}]),  # unknown op
        ({}, [{"field": "a", "value": 1}]),  # no op at all
        ({}, [{"op": "set", "value": 1}]),  # no field name
        ({}, [{"op": "set", "field": 3, "value": 1}]),  # field name not a string
        ({}, [{"op": "set", "field": "a"}]),  # set without a value
        ({"a": "text"}, [append_op("a", [1])]),  # append to a non-list
        ({}, [{"op": "append", "field": "a", "values": "xy"}]),  # values not a list
        ({}, [{"op": "append", "field": "a"}]),  # values missing
        ({"a": [1]}, [merge_op("a", {"k": 1})]),  # merge into a non-object
        ({}, [{"op": "merge", "field": "a", "value": [1]}]),  # merge value not an object
        ({}, ["set a 1"]),  # an operation that is not an object
        ({}, [None]),
        ({}, {"op": "set", "field": "a", "value": 1}),  # a delta that is not a list
    ],
    ids=["unknown-op", "no-op", "no-field", "field-not-str", "set-no-value", "append-to-str",
         "append-values-str", "append-no-values", "merge-into-list", "merge-list",
         "op-is-str", "op-is-none", "delta-is-object"],
)
def test_bad_operations_raise_delta_error(state: dict[str, Any], delta: Any) -> None:
    with pytest.raises(DeltaError):
        fold(state, delta)


@given(_state_pairs())
def test_fold_of_diff_gives_exactly_the_after_state(
        pair: tuple[dict[str, Any], dict[str, Any]]) -> None:
    before, after = pair
    folded = fold(before, diff(before, after))

    assert folded == after
    # == is not enough: 1 == 1.0 == True, but the state hash tells them apart.
    assert canonical_bytes(folded) == canonical_bytes(after)


@given(_states)
def test_diff_of_a_state_with_itself_is_empty(state: dict[str, Any]) -> None:
    assert diff(state, state) == []


@given(_state_pairs())
def test_diff_touches_only_changed_fields(pair: tuple[dict[str, Any], dict[str, Any]]) -> None:
    before, after = pair
    touched = {op["field"] for op in diff(before, after)}
    changed = {k for k in before.keys() | after.keys()
               if k not in before or k not in after
               or canonical_bytes(before[k]) != canonical_bytes(after[k])}

    assert touched == changed


@pytest.mark.parametrize(("old", "new"),
                         [(1, True), (0, False), (1, 1.0), (0.0, -0.0), ([1], [True])])
def test_diff_sees_values_python_calls_equal_but_json_does_not(old: Any, new: Any) -> None:
    delta = diff({"a": old}, {"a": new})

    assert delta == [set_op("a", new)]
