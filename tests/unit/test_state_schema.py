"""Updates go through reducers to patch ops; bad values fail loudly with node and field."""

from __future__ import annotations

import math
from typing import Annotated

import pytest
from pydantic import BaseModel

from engine.delta import fold
from engine.errors import StateValidationError
from engine.reducers import custom
from engine.state import StateSchema
from tests.engine_graphs import Doc

SCHEMA = StateSchema(Doc)


def test_initial_state_has_defaults_and_input() -> None:
    ops, state = SCHEMA.initial({"text": "hi"})
    assert state == {"text": "hi", "count": 0, "notes": [], "meta": {}, "approved": None}
    assert fold({}, ops) == state


def test_reducers_map_to_generic_ops() -> None:
    _, state = SCHEMA.initial({})
    ops, after = SCHEMA.apply(state, {"notes": ["a"], "meta": {"k": 1}, "count": 3}, node="n")
    assert [op["op"] for op in ops] == ["append", "merge", "set"]
    assert fold(state, ops) == after
    ops2, after2 = SCHEMA.apply(after, {"notes": ["b"], "meta": {"j": 2}}, node="n")
    assert after2["notes"] == ["a", "b"] and after2["meta"] == {"k": 1, "j": 2}
    assert len(str(ops2)) < 200  # the delta holds the change, not the whole list


@pytest.mark.parametrize(("update", "field"), [
    ({"count": "3"}, "count"),  # no silent str→int coercion
    ({"count": object()}, "count"),  # unserializable
    ({"count": 1.5}, "count"),
    ({"text": math.nan}, "text"),
    ({"nope": 1}, "nope"),  # unknown field
    ({"notes": "not a list"}, "notes"),
    ({"meta": {"x": {1, 2}}}, "meta"),  # a set has no JSON form
])
def test_bad_updates_name_node_and_field(update: dict[str, object], field: str) -> None:
    _, state = SCHEMA.initial({})
    with pytest.raises(StateValidationError) as info:
        SCHEMA.apply(state, update, node="writer")
    assert info.value.node == "writer"
    assert info.value.field == field
    assert "writer" in str(info.value) and field in str(info.value)


class Tally(BaseModel):
    seen: Annotated[list[str], custom(lambda current, update: {*(current or []), *update})] = []


def test_custom_reducer_result_without_json_form_names_node_and_field() -> None:
    schema = StateSchema(Tally)
    _, state = schema.initial({})
    with pytest.raises(StateValidationError) as info:
        schema.apply(state, {"seen": ["a"]}, node="counter")  # the reducer returns a set
    assert (info.value.node, info.value.field) == ("counter", "seen")


class Odd(BaseModel):
    ratio: float = math.inf


def test_default_without_json_form_fails_the_start() -> None:
    with pytest.raises(StateValidationError) as info:
        StateSchema(Odd).initial({})
    assert info.value.node == "__start__" and "json" in str(info.value).lower()
