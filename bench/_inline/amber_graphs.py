"""The benchmark's graphs on Amber; the same shapes as bench/_inline/peer_langgraph.py.

`linear` is a 20-node chain whose nodes append an int and bump a counter;
`hitl` is draft → review → send with `interrupt_before=["review"]`;
`chat_graph` is a chain whose nodes each append one message to a long history.
Importable as `bench._inline.amber_graphs:hitl` for `amber resume --graph`.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel

from bench._inline.common import CHAT_NODES, add_chain, chat_reply
from engine.context import NodeContext
from engine.graph import END, START, CompiledGraph, Graph
from engine.reducers import append

NODES = 20


class SeqState(BaseModel):
    trace: Annotated[list[int], append] = []
    count: int = 0


def _seq_node(i: int) -> Any:
    def node(state: SeqState) -> dict[str, Any]:
        return {"trace": [i], "count": state.count + 1}
    node.__name__ = f"n{i:02d}"
    return node


def linear_graph(nodes: int = NODES, *, name: str | None = None) -> CompiledGraph:
    g = Graph(SeqState, name=name or f"bench_linear_{nodes}")
    return add_chain(g, [(f"n{i:02d}", _seq_node(i)) for i in range(nodes)],
                     START, END).compile()


class HitlState(BaseModel):
    request: str = ""
    draft: str = ""
    approved: bool | None = None
    sent: str | None = None
    audit: Annotated[list[str], append] = []


def draft(state: HitlState) -> dict[str, Any]:
    return {"draft": f"re: {state.request}", "audit": ["drafted"]}


def review(state: HitlState, ctx: NodeContext) -> dict[str, Any]:
    decision = ctx.decision if isinstance(ctx.decision, dict) else {}
    approved = bool(decision.get("approved"))
    return {"approved": approved, "audit": [f"review: {approved}"]}


def send(state: HitlState) -> dict[str, Any]:
    return {"sent": f"msg-{len(state.draft)}", "audit": ["sent"]}


def route(state: HitlState) -> str:
    return "send" if state.approved else "stop"


def hitl_graph(*, name: str = "bench_hitl", state: type[HitlState] = HitlState,
               review_node: Any = review) -> CompiledGraph:
    """draft → [interrupt before] review → send; the workers bench swaps in its own review."""
    g = Graph(state, name=name)
    g.add_node("draft", draft)
    g.add_node("review", review_node)
    g.add_node("send", send)
    g.add_edge(START, "draft")
    g.add_edge("draft", "review")
    g.add_conditional_edges("review", route, {"send": "send", "stop": END})
    g.add_edge("send", END)
    return g.compile(interrupt_before=["review"])


hitl = hitl_graph()


class ChatState(BaseModel):
    messages: Annotated[list[dict[str, Any]], append] = []
    turn: int = 0


def _chat_node(state: ChatState) -> dict[str, Any]:
    return {"messages": [chat_reply(state.turn)], "turn": state.turn + 1}


def chat_graph() -> CompiledGraph:
    g = Graph(ChatState, name=f"bench_chat_{CHAT_NODES}")
    return add_chain(g, [(f"c{i:02d}", _chat_node) for i in range(CHAT_NODES)],
                     START, END).compile()

