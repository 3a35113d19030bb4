"""Graph definition API: nodes over a typed state, edges, routers, interrupts.

Familiar to LangGraph users on purpose (add_node, add_edge,
add_conditional_edges, START/END, compile(interrupt_before=...)), but the
compiled graph runs on Amber's log. Mistakes are caught at compile time.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import math
from collections.abc import Awaitable, Callable, Hashable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from engine.canonical import canonical_bytes
from engine.errors import GraphDefinitionError
from engine.events import GraphRef
from engine.retry import NO_RETRY, RetryPolicy
from engine.state import StateSchema

if TYPE_CHECKING:
    from engine.checkpointer import Checkpointer
    from engine.projection import Checkpoint
    from engine.runner import InlineRunner, RunResult

START = "__start__"
END = "__end__"

Update = dict[str, Any] | None
NodeFn = Callable[..., Update | Awaitable[Update]]  # `async def` nodes too (engine/awaiting.py)
Router = Callable[..., Hashable]


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeSpec:
    name: str
    fn: NodeFn
    retry: RetryPolicy
    takes_context: bool
    timeout_s: float | None = None  # per attempt


@dataclass(frozen=True, slots=True, kw_only=True)
class Branch:
    source: str
    router: Router
    mapping: dict[Hashable, str] | None


class Graph:
    """A graph under construction; `compile()` validates it and freezes it."""

    def __init__(self, state_model: type[BaseModel], *, name: str | None = None) -> None:
        self.state_model = state_model
        self.name = name or state_model.__name__
        if "\x00" in self.name:  # it would be in every event of the graph, which none may hold
            raise GraphDefinitionError(f"graph name {self.name!r} holds a NUL character")
        self._nodes: dict[str, NodeSpec] = {}
        self._edges: dict[str, list[str]] = {}
        self._branches: dict[str, Branch] = {}

    def add_node(self, name: str | NodeFn, fn: NodeFn | None = None, *,
                 retry: RetryPolicy | None = None, timeout_s: float | None = None) -> Graph:
        """Add a node; `timeout_s` bounds each attempt (NodeTimeoutError, retried per
        `retry` like any failure)."""
        if callable(name):
            fn, name = name, name.__name__
        if fn is None or not callable(fn) or not isinstance(name, str):
            raise GraphDefinitionError(f"node {name!r} needs a name and a callable")
        if name in (START, END) or name in self._nodes:
            raise GraphDefinitionError(f"node name {name!r} is reserved or already used")
        if "\x00" in name:  # it would be in every event of the node, which none may hold
            raise GraphDefinitionError(f"node name {name!r} holds a NUL character")
        if timeout_s is not None and not (0 < timeout_s < math.inf):
            raise GraphDefinitionError(f"node {name!r}: timeout_s must be a positive number "
                                       f"of seconds, not {timeout_s!r}")
        takes_ctx = len(inspect.signature(fn).parameters) >= 2
        self._nodes[name] = NodeSpec(name=name, fn=fn, retry=retry or NO_RETRY,
                                     takes_context=takes_ctx, timeout_s=timeout_s)
        return self

    def add_edge(self, source: str, target: str) -> Graph:
        self._edges.setdefault(source, []).append(target)
        return self

    def add_conditional_edges(self, source: str, router: Router,
                              mapping: dict[Hashable, str] | list[str] | None = None) -> Graph:
        if isinstance(mapping, list):
            mapping = {m: m for m in mapping}
        self._branches[source] = Branch(source=source, router=router, mapping=mapping)
        return self

    def set_entry_point(self, node: str) -> Graph:
        return self.add_edge(START, node)

    def set_finish_point(self, node: str) -> Graph:
        return self.add_edge(node, END)

    def compile(self, *, interrupt_before: Iterable[str] = (), interrupt_after: Iterable[str] = (),
                checkpointer: Checkpointer | None = None) -> CompiledGraph:
        """Validate and freeze; raises GraphDefinitionError naming the problem."""
        before, after = frozenset(interrupt_before), frozenset(interrupt_after)
        _validate(self._nodes, self._edges, self._branches, before | after)
        edges = {k: v[0] for k, v in self._edges.items()}
        return CompiledGraph(name=self.name, schema=StateSchema(self.state_model),
                             nodes=dict(self._nodes), edges=edges,
                             branches=dict(self._branches), interrupt_before=before,
                             interrupt_after=after, checkpointer=checkpointer)


def _successors(source: str, edges: dict[str, list[str]], branches: dict[str, Branch],
                nodes: Iterable[str]) -> list[str]:
    if source in branches:
        mapping = branches[source].mapping
        return list(mapping.values()) if mapping is not None else [*nodes, END]
    return edges.get(source, [])


def _validate(nodes: dict[str, NodeSpec], edges: dict[str, list[str]],
              branches: dict[str, Branch], interrupts: frozenset[str]) -> None:
    known = set(nodes) | {START, END}
    for source in [*edges, *branches]:
        if source not in known or source == END:
            raise GraphDefinitionError(f"edge from unknown node {source!r}")
        if source in edges and source in branches:
            raise GraphDefinitionError(f"node {source!r} has both an edge and a router")
        if len(edges.get(source, [])) > 1:
            raise GraphDefinitionError(f"node {source!r} has several outgoing edges; "
                                       "parallel branches are not supported yet")
        for target in _successors(source, edges, branches, nodes):
            if target not in known or target == START:
                raise GraphDefinitionError(f"edge {source!r} -> unknown node {target!r}")
    for name in [START, *nodes]:
        if name not in edges and name not in branches:
            raise GraphDefinitionError(f"node {name!r} has no outgoing edge "
                                       f"(add_edge({name!r}, END) to finish there)")
    unknown = sorted(interrupts - set(nodes))
    if unknown:
        raise GraphDefinitionError(f"interrupt names unknown node {unknown[0]!r}")
    _check_reachable(nodes, edges, branches)


def _check_reachable(nodes: dict[str, NodeSpec], edges: dict[str, list[str]],
                     branches: dict[str, Branch]) -> None:
    seen, todo = {START}, [START]
    while todo:
        for nxt in _successors(todo.pop(), edges, branches, nodes):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    unreachable = sorted(set(nodes) - seen)
    if unreachable:
        raise GraphDefinitionError(f"unreachable node(s) from START: {unreachable}")


@functools.lru_cache(maxsize=256)
def _file_hash(path: str) -> str:
    try:
        with open(path, "rb") as source:
            return hashlib.sha256(source.read()).hexdigest()
    except OSError:
        return "unreadable"


def _code_hash(fn: Callable[..., Any]) -> str:
    """The node's name plus the bytes of the file defining it.

    Coarser than the function's own source, but one read per file instead of a
    tokenize per function: inspect.getsource cost ~30 ms of every cold resume.
    """
    code = getattr(fn, "__code__", None) or getattr(type(fn).__call__, "__code__", None)
    where = _file_hash(code.co_filename) if code is not None else "builtin"
    name = f"{getattr(fn, '__module__', '')}.{getattr(fn, '__qualname__', type(fn).__name__)}"
    return hashlib.sha256(f"{name}\n{where}".encode()).hexdigest()[:16]


class CompiledGraph:
    """A validated graph. Run it with a checkpointer (see engine.runner)."""

    def __init__(self, *, name: str, schema: StateSchema, nodes: dict[str, NodeSpec],
                 edges: dict[str, str], branches: dict[str, Branch],
                 interrupt_before: frozenset[str], interrupt_after: frozenset[str],
                 checkpointer: Checkpointer | None) -> None:
        self.name, self.schema, self.nodes = name, schema, nodes
        self.edges, self.branches = edges, branches
        self.interrupt_before, self.interrupt_after = interrupt_before, interrupt_after
        self.checkpointer = checkpointer
        self._ref: GraphRef | None = None

    @property
    def ref(self) -> GraphRef:
        """Name + fingerprint, computed on first use: reading node sources costs start-up time."""
        if self._ref is None:
            self._ref = GraphRef(name=self.name, fingerprint=self._fingerprint())
        return self._ref

    def _fingerprint(self) -> str:
        shape = {
            "name": self.name, "edges": self.edges,
            "nodes": {n: _code_hash(s.fn) for n, s in sorted(self.nodes.items())},
            "branches": {s: {"router": _code_hash(b.router),
                             "mapping": {str(k): v for k, v in (b.mapping or {}).items()}}
                         for s, b in sorted(self.branches.items())},
            "state": self.schema.model.model_json_schema(),
        }
        return hashlib.sha256(canonical_bytes(shape)).hexdigest()[:16]

    def with_interrupts(self, *, before: Iterable[str] | None = None,
                        after: Iterable[str] | None = None) -> CompiledGraph:
        """The same graph with other static interrupts (they are run config, not code)."""
        return CompiledGraph(
            name=self.name, schema=self.schema, nodes=self.nodes, edges=self.edges,
            branches=self.branches, checkpointer=self.checkpointer,
            interrupt_before=self.interrupt_before if before is None else frozenset(before),
            interrupt_after=self.interrupt_after if after is None else frozenset(after))

    def runner(self, checkpointer: Checkpointer | None = None) -> InlineRunner:
        """An inline runner bound to `checkpointer` (or the compiled one, or the default)."""
        from engine.checkpointer import resolve_checkpointer
        from engine.runner import InlineRunner

        return InlineRunner(self, resolve_checkpointer(checkpointer or self.checkpointer))

    def start(self, thread_id: str, input: dict[str, Any] | None = None, *,
              actor: str | None = None, checkpointer: Checkpointer | None = None) -> RunResult:
        """Start a thread and run it inline until it completes, fails or is interrupted."""
        return self.runner(checkpointer).start(thread_id, input or {}, actor=actor)

    def resume(self, thread_id: str, value: Any = None, *, actor: str,
               interrupt_id: str | None = None, reason: str | None = None,
               checkpointer: Checkpointer | None = None) -> RunResult:
        """Record a human decision on the open interrupt and continue inline."""
        return self.runner(checkpointer).resume(thread_id, value, actor=actor,
                                                interrupt_id=interrupt_id, reason=reason)

    def cancel(self, config: dict[str, Any] | str, *, actor: str, reason: str | None = None,
               checkpointer: Checkpointer | None = None) -> RunResult:
        """Stop the thread for good, waiting or not, recording who and why."""
        return self.runner(checkpointer).cancel(thread_of(config), actor=actor, reason=reason)

    def fork(self, source: dict[str, Any] | str, seq: int, thread_id: str, *,
             actor: str | None = None, reason: str | None = None,
             checkpointer: Checkpointer | None = None) -> RunResult:
        """Start `thread_id` from checkpoint `seq` of `source`, as `source` would have gone
        on from there, and run it inline (see engine.forking)."""
        return self.runner(checkpointer).fork(thread_of(source), seq, thread_id, actor=actor,
                                              reason=reason)

    def update_state(self, config: dict[str, Any] | str | None = None,
                     values: dict[str, Any] | None = None, *, as_node: str | None = None,
                     actor: str | None = None, reason: str | None = None,
                     checkpointer: Checkpointer | None = None) -> RunResult:
        """Append StateEdited: `values` applied through the reducers as if `as_node` ran."""
        return self.runner(checkpointer).update_state(
            thread_of(config), values or {}, as_node=as_node, actor=actor, reason=reason)

    def run(self, inputs: dict[str, Any] | None = None, config: dict[str, Any] | None = None, *,
            interrupt_before: Iterable[str] | None = None,
            interrupt_after: Iterable[str] | None = None,
            checkpointer: Checkpointer | None = None) -> RunResult:
        """Start (inputs given) or continue (inputs None) the thread named in `config`."""
        graph = self.with_interrupts(before=interrupt_before, after=interrupt_after)
        runner = graph.runner(checkpointer)
        if inputs is None:
            return runner.continue_(thread_of(config))
        return runner.start(thread_of(config), inputs)

    invoke = run

    def get_state(self, config: dict[str, Any] | str, seq: int | None = None, *,
                  checkpointer: Checkpointer | None = None) -> dict[str, Any]:
        """The thread's state after `seq` (default: its head)."""
        return self.runner(checkpointer).get_state(thread_of(config), seq)

    def history(self, config: dict[str, Any] | str, *,
                checkpointer: Checkpointer | None = None) -> list[Checkpoint]:
        """The thread's accepted events, oldest first: each a checkpoint (state after it)."""
        return self.runner(checkpointer).history(thread_of(config))


def thread_of(config: dict[str, Any] | str | None) -> str:
    """The thread id of a LangGraph-style config or a plain id."""
    if isinstance(config, str):
        return config
    try:
        return str((config or {})["configurable"]["thread_id"])
    except (KeyError, TypeError):
        raise GraphDefinitionError(
            'config must be {"configurable": {"thread_id": ...}} or a thread id') from None
