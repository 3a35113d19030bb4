"""Per-field reducers, declared with `Annotated[...]` on the state model.

Each reducer maps a node's update of one field to one generic patch operation
of the ledger core, so readers rebuild state without the graph's code:
replace → set, append → append, merge → merge, custom → set of the result.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from engine.delta import Op, append_op, merge_op, set_op


@dataclass(frozen=True, slots=True)
class Reducer:
    """How an update of a field combines with its current value."""

    kind: str  # "replace", "append", "merge" or "custom"
    fn: Callable[[Any, Any], Any] | None = None

    def op(self, field: str, current: Any, update: Any) -> Op:
        if self.kind == "append":
            return append_op(field, update)
        if self.kind == "merge":
            return merge_op(field, update)
        if self.kind == "custom" and self.fn is not None:
            return set_op(field, self.fn(current, update))
        return set_op(field, update)


REPLACE = Reducer("replace")
append = Reducer("append")
merge = Reducer("merge")


def custom(fn: Callable[[Any, Any], Any]) -> Reducer:
    """A reducer computed by `fn(current, update)`; recorded as a `set` of the result."""
    return Reducer("custom", fn)


def reducer_from_metadata(metadata: list[Any]) -> Reducer:
    """The reducer declared in a field's Annotated metadata (LangGraph's styles accepted)."""
    for item in metadata:
        if isinstance(item, Reducer):
            return item
        if item is operator.add:
            return append
        if item is operator.or_:
            return merge
        if callable(item) and not isinstance(item, type):
            return custom(item)
    return REPLACE
