"""Compile-time validation names the problem."""

from __future__ import annotations

import pytest

from engine.errors import GraphDefinitionError
from engine.graph import END, START, Graph
from tests.engine_graphs import Doc, approval_graph


def _noop(state: Doc) -> None:
    return None


def _graph() -> Graph:
    g = Graph(Doc, name="g")
    g.add_node("a", _noop)
    g.add_node("b", _noop)
    return g


def test_valid_graph_compiles_with_stable_fingerprint() -> None:
    assert approval_graph().ref == approval_graph().ref
    assert approval_graph().ref.name == "doc_approval"


def test_fingerprint_ignores_interrupts_but_not_code() -> None:
    plain = approval_graph()
    assert approval_graph(interrupt_before=["review"]).ref == plain.ref
    g = _graph()
    g.add_edge(START, "a").add_edge("a", "b").add_edge("b", END)
    assert g.compile().ref.fingerprint != plain.ref.fingerprint


@pytest.mark.parametrize(("edges", "message"), [
    ([(START, "a"), ("a", "zzz"), ("b", END)], "unknown node 'zzz'"),
    ([(START, "a"), ("a", END), ("b", END)], "unreachable"),
    ([(START, "a"), ("a", "b")], "'b' has no outgoing edge"),
    ([("a", "b"), ("b", END)], "'__start__' has no outgoing edge"),
    ([(START, "a"), ("a", "b"), ("a", END), ("b", END)], "several outgoing edges"),
])
def test_invalid_edges_are_named(edges: list[tuple[str, str]], message: str) -> None:
    g = _graph()
    for a, b in edges:
        g.add_edge(a, b)
    with pytest.raises(GraphDefinitionError, match=message):
        g.compile()


def test_router_mapping_to_unknown_node_is_refused() -> None:
    g = _graph()
    g.add_edge(START, "a").add_conditional_edges("a", lambda s: "x", {"x": "nowhere"})
    g.add_edge("b", END)
    with pytest.raises(GraphDefinitionError, match="unknown node 'nowhere'"):
        g.compile()


def test_interrupt_on_unknown_node_is_refused() -> None:
    with pytest.raises(GraphDefinitionError, match="interrupt names unknown node 'nope'"):
        approval_graph(interrupt_before=["nope"])


def test_duplicate_and_reserved_node_names_are_refused() -> None:
    g = _graph()
    with pytest.raises(GraphDefinitionError):
        g.add_node("a", _noop)
    with pytest.raises(GraphDefinitionError):
        g.add_node(END, _noop)
