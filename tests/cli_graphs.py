"""Compiled graphs the CLI tests name as MODULE:ATTR (`amber start|resume|replay --graph`).

A module of their own, so that the unit tests importing tests.engine_graphs do
not compile them.
"""

from __future__ import annotations

from tests.engine_graphs import approval_graph

doc_approval = approval_graph(interrupt_before=["review"])
doc_approval_today = approval_graph(interrupt_before=["review"], publishes=False)  # a later version


def _big_review() -> object:
    """draft writes a 3 MB document and records a 1 MB prompt → [pause] → send measures it."""
    from typing import Any

    from engine.context import NodeContext
    from tests.engine_graphs import Doc, line_graph

    def draft(state: Doc, ctx: NodeContext) -> dict[str, Any]:
        ctx.record_io("llm", {"prompt": BIG_PROMPT}, {"text": "drafted"})
        return {"text": BIG_DOC}

    g = line_graph(Doc, "big_review", ("draft", draft),
                   ("send", lambda state: {"count": len(state.text)}))
    return g.compile(interrupt_before=["send"])


BIG_DOC = "contract clause " * 200_000  # 3.2 MB: more than three events could hold
BIG_PROMPT = "context " * 125_000  # 1 MB
big_review = _big_review()
