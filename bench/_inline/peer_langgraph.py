"""The LangGraph side of bench/inline.py: the same graphs on PostgresSaver (psycopg 3).

Started by bench/inline.py in its own interpreter and driven over stdin/stdout
(one JSON command per line, see bench._inline.common.serve):

    python -m bench._inline.peer_langgraph --database URL [--nodes 20]

Durability is `durability="sync"`: the step's checkpoint is committed to
PostgreSQL before the next step starts, which is what Amber guarantees with
its broker ack. (LangGraph's own default is "async", where the write overlaps
the next step; the orchestrator measures it too, for reference only.)
"""

from __future__ import annotations

import argparse
import operator
from typing import Annotated, Any, Literal, TypedDict

import psycopg
from langgraph.checkpoint.postgres import PostgresSaver
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command, interrupt
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from bench._inline.common import (
    CHAT_NODES,
    add_chain,
    chat_history,
    chat_reply,
    run_items,
    serve,
    table_bytes,
    versions,
)

Durability = Literal["sync", "async", "exit"]


# --- the 20-node linear graph ------------------------------------------------------
class SeqState(TypedDict):
    trace: Annotated[list[int], operator.add]
    count: int


def _seq_node(i: int) -> Any:
    def node(state: SeqState) -> dict[str, Any]:
        return {"trace": [i], "count": state["count"] + 1}
    node.__name__ = f"n{i:02d}"
    return node


def linear_graph(nodes: int, checkpointer: Any) -> Any:
    g = StateGraph(SeqState)
    return add_chain(g, [(f"n{i:02d}", _seq_node(i)) for i in range(nodes)],
                     START, END).compile(checkpointer=checkpointer)


# --- the chat graph: each node appends one message to a long history -------------------
class ChatState(TypedDict):
    messages: Annotated[list[dict[str, Any]], operator.add]
    turn: int


def _chat_node(state: ChatState) -> dict[str, Any]:
    return {"messages": [chat_reply(state["turn"])], "turn": state["turn"] + 1}


def chat_graph(checkpointer: Any) -> Any:
    g = StateGraph(ChatState)
    return add_chain(g, [(f"c{i:02d}", _chat_node) for i in range(CHAT_NODES)],
                     START, END).compile(checkpointer=checkpointer)


# --- the HITL graph: draft → review → send --------------------------------------------
class HitlState(TypedDict, total=False):
    request: str
    draft: str
    decision: dict[str, Any] | None
    approved: bool | None
    sent: str | None
    audit: Annotated[list[str], operator.add]


def draft(state: HitlState) -> dict[str, Any]:
    return {"draft": f"re: {state['request']}", "audit": ["drafted"]}


def review_static(state: HitlState) -> dict[str, Any]:
    """interrupt_before=["review"]: the decision arrives in the state (update_state)."""
    approved = bool((state.get("decision") or {}).get("approved"))
    return {"approved": approved, "audit": [f"review: {approved}"]}


def review_dynamic(state: HitlState) -> dict[str, Any]:
    """interrupt() inside the node: the decision arrives as Command(resume=...)."""
    answer = interrupt({"draft": state["draft"]})
    approved = bool(answer.get("approved"))
    return {"approved": approved, "audit": [f"review: {approved}"]}


def send(state: HitlState) -> dict[str, Any]:
    return {"sent": f"msg-{len(state['draft'])}", "audit": ["sent"]}


def route(state: HitlState) -> str:
    return "send" if state.get("approved") else END


def hitl_graph(checkpointer: Any, *, dynamic: bool) -> Any:
    g = StateGraph(HitlState)
    g.add_node("draft", draft)
    g.add_node("review", review_dynamic if dynamic else review_static)
    g.add_node("send", send)
    g.add_edge(START, "draft")
    g.add_edge("draft", "review")
    g.add_conditional_edges("review", route, {"send": "send", END: END})
    g.add_edge("send", END)
    if dynamic:
        return g.compile(checkpointer=checkpointer)
    return g.compile(checkpointer=checkpointer, interrupt_before=["review"])


# What langgraph-checkpoint-postgres asks of the connections it is given.
SAVER_CONN_KWARGS: dict[str, Any] = {"autocommit": True, "prepare_threshold": 0,
                                     "row_factory": dict_row}


def _cfg(thread: str) -> dict[str, Any]:
    return {"configurable": {"thread_id": thread}}


class LangGraphSide:
    """Answers the orchestrator's commands on one PostgresSaver connection."""

    def __init__(self, database: str, nodes: int, pool: int) -> None:
        self.database = database
        if pool > 1:  # one connection per concurrent thread, as LangGraph's docs advise
            self._pool = ConnectionPool(database, min_size=pool, max_size=pool,
                                        kwargs=SAVER_CONN_KWARGS)
            self.cp = PostgresSaver(self._pool)  # type: ignore[arg-type]
        else:
            self._ctx = PostgresSaver.from_conn_string(database)
            self.cp = self._ctx.__enter__()
        self.cp.setup()
        self.nodes = nodes
        self.linear = linear_graph(nodes, self.cp)
        self.chat = chat_graph(self.cp)
        self.hitl = {"static": hitl_graph(self.cp, dynamic=False),
                     "dynamic": hitl_graph(self.cp, dynamic=True)}

    def seq(self, thread: str, durability: Durability) -> None:
        out = self.linear.invoke({"trace": [], "count": 0}, _cfg(thread), durability=durability)
        assert out["count"] == self.nodes, out

    def chat_run(self, thread: str, history: int) -> None:
        out = self.chat.invoke({"messages": chat_history(history), "turn": 0}, _cfg(thread),
                               durability="sync")
        assert out["turn"] == CHAT_NODES, out

    def start(self, thread: str, style: str) -> None:
        app = self.hitl[style]
        app.invoke({"request": f"refund {thread}", "audit": []}, _cfg(thread),
                   durability="sync")
        snap = app.get_state(_cfg(thread))
        assert snap.next == ("review",), snap.next

    def resume(self, thread: str, style: str) -> None:
        app, decision = self.hitl[style], {"approved": True}
        if style == "dynamic":
            out = app.invoke(Command(resume=decision), _cfg(thread), durability="sync")
        else:
            app.update_state(_cfg(thread), {"decision": decision})
            out = app.invoke(None, _cfg(thread), durability="sync")
        assert out.get("sent"), out

    def handle(self, cmd: dict[str, Any]) -> dict[str, Any]:
        op, ids, style = cmd["op"], cmd.get("ids", []), cmd.get("style", "static")
        n = cmd.get("concurrency", 1)
        if op == "seq":
            durability = cmd.get("durability", "sync")
            return run_items(ids, lambda t: self.seq(t, durability), n)
        if op == "chat":
            return run_items(ids, lambda t: self.chat_run(t, cmd["history"]), n)
        if op == "stored_bytes":
            return {"postgres": table_bytes(self.database)}
        if op == "hitl_start":
            return run_items(ids, lambda t: self.start(t, style), n)
        if op == "hitl_resume":
            return run_items(ids, lambda t: self.resume(t, style), n)
        if op == "hitl_both":
            return run_items(ids, lambda t: (self.start(t, style), self.resume(t, style)), n)
        if op == "info":
            with psycopg.connect(self.database) as conn:
                row = conn.execute("SELECT pg_database_size(current_database())").fetchone()
            return {"checkpointer": "langgraph.checkpoint.postgres.PostgresSaver "
                                    "(psycopg 3, autocommit; a pool of one connection per "
                                    "concurrent thread when --concurrency > 1)",
                    "durability": "sync (the default is async)",
                    "hitl_styles": {"static": "interrupt_before=['review'] + "
                                              "update_state + invoke(None)",
                                    "dynamic": "interrupt() in review + "
                                               "invoke(Command(resume=...))"},
                    "database_bytes": int(row[0]) if row else None,
                    "versions": versions("langgraph", "langgraph-checkpoint",
                                         "langgraph-checkpoint-postgres", "psycopg")}
        raise ValueError(f"unknown op {op!r}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--database", required=True)
    p.add_argument("--nodes", type=int, default=20)
    p.add_argument("--pool", type=int, default=1, help="connections (> 1: a pool)")
    a = p.parse_args()
    serve(LangGraphSide(a.database, a.nodes, a.pool).handle)


if __name__ == "__main__":
    main()
