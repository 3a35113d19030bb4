"""Typed state: applying a node's update to the canonical JSON state.

State at rest is plain JSON (what the ledger stores); nodes see the pydantic
model. Every update is validated strictly per field and the resulting state
again as a whole, so nothing is silently coerced or dropped: a bad value
fails the step with the node and field named.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError

from engine.blobs import RESERVED, refs_in
from engine.canonical import canonical_text
from engine.delta import Op, State, fold
from engine.errors import CanonicalJSONError, DeltaError, StateValidationError
from engine.reducers import Reducer, reducer_from_metadata


@dataclass(frozen=True, slots=True)
class FieldSpec:
    reducer: Reducer
    update: TypeAdapter[Any]  # validates what a node returns: list[item] for append


class StateSchema:
    """The state model's fields, their reducers and validators."""

    def __init__(self, model: type[BaseModel]) -> None:
        self.model = model
        self.fields = {name: _spec(info.annotation, list(info.metadata))
                       for name, info in model.model_fields.items()}

    def load(self, state: State, *, node: str) -> BaseModel:
        """The model for a stored state; a state that no longer validates names the field."""
        try:
            return self.model.model_validate(state)
        except ValidationError as e:
            raise _named(e, node, "stored state does not validate") from e

    def initial(self, values: dict[str, Any], *, node: str = "__start__") -> tuple[list[Op], State]:
        """Ops and state for a thread's input, from the model's defaults."""
        defaults = self.model.model_construct().model_dump(mode="json")
        _require_json(defaults, node, None)
        _, state = self.apply(defaults, values, node=node)
        return _set_all(state), state  # one `set` per field: the first event reads plainly

    def apply(self, state: State, update: dict[str, Any] | None, *,
              node: str) -> tuple[list[Op], State]:
        """Validate `update`, turn it into ops through the reducers, fold it."""
        ops = [self._op(state, field, value, node) for field, value in (update or {}).items()]
        try:
            after = fold(state, ops)
        except DeltaError as e:
            raise StateValidationError(node=node, field=None, problem=str(e)) from e
        self._check_merged(after, ops, node)
        self._check_whole(after, node)
        return ops, after

    def _op(self, state: State, field: str, value: Any, node: str) -> Op:
        spec = self.fields.get(field)
        if spec is None:
            raise StateValidationError(node=node, field=field, problem="not a field of the state")
        if spec.reducer.kind == "append":
            value = _as_list(value, node, field)
        try:
            json_value = _to_json(spec.update, value)
        except (ValidationError, CanonicalJSONError, TypeError, ValueError) as e:
            raise StateValidationError(node=node, field=field, problem=_short(e)) from e
        op = spec.reducer.op(field, state.get(field), json_value)
        if spec.reducer.kind == "custom":  # what is stored is the reducer's result
            _require_json(op["value"], node, field)
        if refs_in(op.get("value", op.get("values"))):
            # else a node, an input or an edit could name any blob, another thread's too
            raise StateValidationError(node=node, field=field, problem=RESERVED)
        return op

    @staticmethod
    def _check_merged(after: State, ops: list[Op], node: str) -> None:
        """A merge can complete a pointer from halves that each passed `_op` (the state it
        merges into holds texts, never pointers: any pointer in the result is forged)."""
        for op in ops:
            if op["op"] == "merge" and refs_in(after.get(op["field"])):
                raise StateValidationError(node=node, field=op["field"], problem=RESERVED)

    def _check_whole(self, after: State, node: str) -> None:
        # Not serialized again here: a fold of JSON values into a JSON state is
        # JSON, and the whole state is already serialized once per event (seal).
        try:
            self.model.model_validate(after)
        except ValidationError as e:
            raise _named(e, node, "state after the update does not validate") from e


def _spec(annotation: Any, metadata: list[Any]) -> FieldSpec:
    reducer = reducer_from_metadata(metadata)
    if reducer.kind != "append":
        return FieldSpec(reducer, TypeAdapter(annotation))
    args = getattr(annotation, "__args__", None)  # list[X]: an update is a list of X
    item = args[0] if args else Any
    return FieldSpec(reducer, TypeAdapter(list[item]))  # type: ignore[valid-type]


def _to_json(adapter: TypeAdapter[Any], value: Any) -> Any:
    """The JSON form of a field value, refusing anything that would not come back equal.

    Strict validation refuses coercions ("3" for an int); the round trip refuses
    lossy serialization (a set turned into a list, an object turned into a dict).
    """
    checked = adapter.validate_python(value, strict=True)
    json_value = adapter.dump_python(checked, mode="json")
    canonical_text(json_value)
    if adapter.validate_python(json_value) != checked:
        raise ValueError(f"{type(value).__name__} value does not survive JSON serialization")
    return json_value


def _require_json(value: Any, node: str, field: str | None) -> None:
    try:
        canonical_text(value)
    except CanonicalJSONError as e:
        raise StateValidationError(node=node, field=field, problem=str(e)) from e


def _set_all(values: State) -> list[Op]:
    return [{"op": "set", "field": k, "value": v} for k, v in sorted(values.items())]


def _as_list(value: Any, node: str, field: str) -> list[Any]:
    if isinstance(value, list | tuple):
        return list(value)
    raise StateValidationError(node=node, field=field,
                               problem=f"append reducer needs a list, got {type(value).__name__}")


def _named(e: ValidationError, node: str, problem: str) -> StateValidationError:
    first = e.errors()[0]
    field = ".".join(str(p) for p in first["loc"]) or None
    return StateValidationError(node=node, field=field, problem=f"{problem}: {first['msg']}")


def _short(e: Exception) -> str:
    if isinstance(e, ValidationError):
        first = e.errors()[0]
        return str(first["msg"])
    return str(e)


def detached(state: State) -> State:
    """A copy of `state` that shares no dict or list with it.

    pydantic hands a node the values under `Any`-typed fields as they are, so a node
    changing one in place would change the stored state with no event saying so
    (every reader of the log would then flag the thread). Texts and numbers are
    immutable and stay shared: a copy costs a walk, not a serialization.
    """
    return {field: _copied(value) for field, value in state.items()}


def _copied(value: Any) -> Any:
    kind = type(value)
    if kind is dict:
        return {k: _copied(v) for k, v in value.items()}
    if kind is list:
        return [_copied(v) for v in value]
    return value


def require_returned(stored: State, given: State, update: dict[str, Any] | None, *,
                     node: str) -> None:
    """StateValidationError if the node changed a field of its copy in place without
    returning it: that change would be lost silently (a returned field carries it)."""
    for field, value in stored.items():
        if (update is None or field not in update) and given.get(field) != value:
            raise StateValidationError(
                node=node, field=field,
                problem="changed in place but not returned; return the change "
                        f"({{{field!r}: ...}}): only returned updates reach the log")
