"""Deltas: generic patch operations per top-level state field.

A delta is a list of operations, each a JSON object:

    {"op": "set",    "field": F, "value": V}    state[F] = V
    {"op": "append", "field": F, "values": [..]} state[F] = state.get(F, []) + values
    {"op": "merge",  "field": F, "value": {..}}  state[F] = {**state.get(F, {}), **value}
    {"op": "unset",  "field": F}                 del state[F]

Any reader rebuilds state with `fold` alone, without the graph's code.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from engine.canonical import canonical_text
from engine.errors import DeltaError

Op = dict[str, Any]
State = dict[str, Any]


def set_op(field: str, value: Any) -> Op:
    return {"op": "set", "field": field, "value": value}


def append_op(field: str, values: list[Any]) -> Op:
    return {"op": "append", "field": field, "values": list(values)}


def merge_op(field: str, value: dict[str, Any]) -> Op:
    return {"op": "merge", "field": field, "value": dict(value)}


def unset_op(field: str) -> Op:
    return {"op": "unset", "field": field}


def _append(state: State, op: Op) -> None:
    current = state.get(op["field"], [])
    if not isinstance(current, list) or not isinstance(op.get("values"), list):
        raise DeltaError(f"append to field {op['field']!r} needs a list on both sides")
    state[op["field"]] = [*current, *op["values"]]


def _merge(state: State, op: Op) -> None:
    current = state.get(op["field"], {})
    if not isinstance(current, dict) or not isinstance(op.get("value"), dict):
        raise DeltaError(f"merge into field {op['field']!r} needs an object on both sides")
    state[op["field"]] = {**current, **op["value"]}


def _apply(state: State, op: Op) -> None:
    if not isinstance(op, dict):
        raise DeltaError(f"operation is not an object: {op!r}")
    kind = op.get("op")
    if not isinstance(op.get("field"), str):
        raise DeltaError(f"operation without a field name: {op!r}")
    if kind == "set":
        if "value" not in op:
            raise DeltaError(f"set of field {op['field']!r} without a value")
        state[op["field"]] = op["value"]
    elif kind == "append":
        _append(state, op)
    elif kind == "merge":
        _merge(state, op)
    elif kind == "unset":
        state.pop(op["field"], None)
    else:
        raise DeltaError(f"unknown patch operation {kind!r}")


def fold(state: State, delta: Iterable[Op]) -> State:
    """A new state: `state` with every operation of `delta` applied in order."""
    if isinstance(delta, dict | str | bytes) or not hasattr(delta, "__iter__"):
        raise DeltaError(f"delta is not a list of operations: {type(delta).__name__}")
    out = dict(state)
    for op in delta:
        _apply(out, op)
    return out


def diff(before: State, after: State) -> list[Op]:
    """The simplest delta (set/unset per changed field) that turns before into after."""
    # Compared by canonical text, not ==: 1 == 1.0 == True in Python, yet they hash apart.
    ops = [set_op(k, v) for k, v in sorted(after.items())
           if k not in before or canonical_text(before[k]) != canonical_text(v)]
    return ops + [unset_op(k) for k in sorted(before) if k not in after]
