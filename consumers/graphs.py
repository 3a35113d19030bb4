"""Finding the user's compiled graphs from `MODULE:ATTR` references."""

from __future__ import annotations

import importlib
import os
import sys

from engine.errors import GraphDefinitionError
from engine.graph import CompiledGraph


def load_graph(ref: str) -> CompiledGraph:
    """Import `module.path:attribute` and check it is a compiled graph."""
    module_name, _, attr = ref.partition(":")
    if not module_name or not attr:
        raise GraphDefinitionError(f"graph reference {ref!r} must look like module.path:attribute")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # like `python -m`: the working directory's modules
    graph = getattr(importlib.import_module(module_name), attr, None)
    if not isinstance(graph, CompiledGraph):
        raise GraphDefinitionError(f"{ref} is not a compiled graph (call .compile())")
    return graph


def graph_refs(refs: list[str]) -> list[str]:
    """`refs` (--graph options) if any, else AMBER_GRAPHS split at commas, trimmed."""
    return refs or [r.strip() for r in os.environ.get("AMBER_GRAPHS", "").split(",")
                    if r.strip()]


def graph_for_thread(graph_name: str, refs: list[str]) -> CompiledGraph:
    """The graph named `graph_name` among `refs` (the --graph options, else AMBER_GRAPHS)."""
    for ref in graph_refs(refs):
        graph = load_graph(ref)
        if graph.name == graph_name:
            return graph
    raise GraphDefinitionError(
        f"thread runs graph {graph_name!r}; pass --graph MODULE:ATTR or set AMBER_GRAPHS")
