"""Large texts in states and recorded I/O: events carry pointers, nodes see the texts.

On the in-memory ports with a MemoryBlobStore (it passes the same contract tests as
the Kafka blob topic, tests/contracts/test_blobstore.py); the real stack runs the
same across processes in tests/integration/test_blobs_flow.py.
"""

from __future__ import annotations

from typing import Annotated, Any

import pytest
from pydantic import BaseModel

from engine.blobs import BLOB_KEY, as_ref, refs_in
from engine.blobstore import Blobs
from engine.blobstore_memory import MemoryBlobStore
from engine.checkpointer import Checkpointer
from engine.context import NodeContext
from engine.dispatch import Dispatcher
from engine.eventlog import encode_event
from engine.eventlog_memory import InMemoryEventLog
from engine.events import EventType
from engine.projection import LogProjection
from engine.reducers import custom, merge
from engine.sizing import MAX_EVENT_BYTES
from tests.engine_graphs import Doc, line_graph, one_node_graph
from tests.eventbuild import logged

MIN = 1024
DOC = "lorem ipsum " * 250_000  # 3 MB: three times what one event may hold


def _cp(store: MemoryBlobStore, log: InMemoryEventLog | None = None) -> Checkpointer:
    """A checkpointer as a process has one: its own blob cache over the shared store."""
    log = log or InMemoryEventLog(partitions=2)
    return Checkpointer(log=log, projection=LogProjection(log),
                        blobs=Blobs(store, min_bytes=MIN), snapshot_every=2)


@pytest.fixture
def store() -> MemoryBlobStore:
    return MemoryBlobStore()


def _review_graph(seen: list[str]) -> Any:
    """draft writes DOC → [pause] → send reads it whole."""
    g = line_graph(Doc, "blob_review", ("draft", lambda state: {"text": DOC, "count": 1}),
                   ("send", lambda state: seen.append(state.text) or {"count": state.count + 1}))
    return g.compile(interrupt_before=["send"])


def _paused_in_another_process(store: MemoryBlobStore) -> tuple[InMemoryEventLog, list[str],
                                                                  Any]:
    """Thread "t" of _review_graph, paused at its question by a process now gone: the log,
    what `send` will see, the graph."""
    log, seen = InMemoryEventLog(partitions=2), []
    graph = _review_graph(seen)
    graph.start("t", {}, checkpointer=_cp(store, log))
    return log, seen, graph


def test_a_text_larger_than_an_event_travels_as_a_pointer(store: MemoryBlobStore) -> None:
    cp, seen = _cp(store), []
    graph = _review_graph(seen)

    paused = graph.start("t", {}, checkpointer=cp)
    done = graph.resume("t", {"ok": True}, actor="alice", checkpointer=cp)

    assert paused.status == "interrupted" and done.status == "completed"
    assert seen == [DOC] and done.state["text"] == DOC
    assert graph.get_state("t", checkpointer=cp)["text"] == DOC
    events = logged(cp, "t")
    assert max(len(encode_event(e)) for e in events) < 10_000
    drafted = next(e for e in events if e.node == "draft")
    [ref] = refs_in(drafted.ops())
    assert ref.size == len(DOC) and store.get(ref) == DOC.encode()
    assert as_ref(cp.projection.get_state("t")["text"]) == ref  # the projection keeps it


def test_a_text_carried_from_step_to_step_and_snapshot_is_written_once(
        store: MemoryBlobStore) -> None:
    cp, seen = _cp(store), []
    graph = _review_graph(seen)

    graph.start("t", {}, checkpointer=cp)
    graph.resume("t", {"ok": True}, actor="alice", checkpointer=cp)

    snapshots = [e for e in logged(cp, "t") if e.snapshot is not None]
    assert len(snapshots) == 3 and all(BLOB_KEY in e.snapshot for e in snapshots)
    assert store.writes == 1


def test_another_process_reads_the_text_from_the_store(store: MemoryBlobStore) -> None:
    log, seen, graph = _paused_in_another_process(store)

    later = _cp(store, log)  # a cold cache: only the store has the text
    done = graph.resume("t", {"ok": True}, actor="bob", checkpointer=later)

    assert done.status == "completed" and seen == [DOC]


def test_a_blob_gone_from_the_store_fails_the_step_naming_its_digest(
        store: MemoryBlobStore) -> None:
    log, seen, graph = _paused_in_another_process(store)

    elsewhere = _cp(MemoryBlobStore(), log)  # pointed at a store without the blob
    done = graph.resume("t", {"ok": True}, actor="bob", checkpointer=elsewhere)

    assert done.status == "failed" and seen == []
    assert done.error is not None and done.error.type == "BlobError"
    [ref] = refs_in(logged(elsewhere, "t")[1].ops())
    assert ref.digest in done.error.message


def test_recorded_io_keeps_large_requests_and_answers_as_pointers(
        store: MemoryBlobStore) -> None:
    def ask(state: Doc, ctx: NodeContext) -> dict[str, Any]:
        ctx.record_io("llm", {"prompt": DOC}, {"text": "short answer"})
        return {"text": "short answer"}

    cp = _cp(store)
    one_node_graph(Doc, "io", "ask", ask).start("t", {}, checkpointer=cp)

    step = next(e for e in logged(cp, "t") if e.node == "ask")
    assert step.io is not None and BLOB_KEY in step.io and "short answer" in step.io
    assert len(encode_event(step)) < 10_000


def _joined(current: Any, new: Any) -> Any:
    return (current or "") + new


class Book(BaseModel):
    body: Annotated[str, custom(_joined)] = ""


def test_a_custom_reducer_and_an_edit_see_the_text_not_its_pointer(
        store: MemoryBlobStore) -> None:
    cp = _cp(store)
    graph = one_node_graph(Book, "book", "more", lambda state: {"body": "!"})

    done = graph.start("t", {"body": DOC}, checkpointer=cp)
    edited = graph.update_state("t", {"body": "?"}, as_node="more", checkpointer=cp)

    assert done.state["body"] == DOC + "!"
    assert edited.state["body"] == DOC + "!?"


def test_a_fork_of_a_thread_with_blobs_runs_on_the_texts(store: MemoryBlobStore) -> None:
    cp, seen = _cp(store), []
    graph = _review_graph(seen)
    graph.start("t", {}, checkpointer=cp)

    forked = graph.fork("t", 2, "t-b", actor="auditor", checkpointer=cp)
    done = graph.resume("t-b", {"ok": False}, actor="auditor", checkpointer=cp)

    assert forked.status == "interrupted" and done.status == "completed"
    assert seen == [DOC] and store.writes == 1


def test_workers_offload_and_fill_in_as_the_inline_runner_does(
        store: MemoryBlobStore) -> None:
    cp, seen = _cp(store), []
    graph = _review_graph(seen)
    d = Dispatcher({graph.name: graph}, clock=cp.clock, snapshot_every=2,
                   blobs=cp.blobs)
    d.observe(graph.runner(cp).threads.start("t", {}, actor=None, mode="worker").head)

    stepped = d.step_all()

    drafted = next(e for e in stepped if e.node == "draft")
    [ref] = refs_in(drafted.ops())
    assert store.get(ref) == DOC.encode() and len(encode_event(drafted)) < 10_000


def test_without_a_store_texts_stay_inline_and_the_event_limit_holds(
        cp: Checkpointer) -> None:
    graph = one_node_graph(Doc, "inline", "n", lambda state: {"text": "y" * (MIN * 2)})
    small = graph.start("t", {}, checkpointer=cp)
    assert small.status == "completed" and refs_in(logged(cp, "t")[1].ops()) == []

    big = one_node_graph(Doc, "big", "n", lambda state: {"text": "z" * MAX_EVENT_BYTES})
    assert big.start("u", {}, checkpointer=cp).status == "failed"
    assert EventType.NODE_FAILED in [e.type for e in logged(cp, "u")]


def test_verify_names_a_blob_the_store_no_longer_gives_back(store: MemoryBlobStore) -> None:
    from engine import log_audit

    cp, seen = _cp(store), []
    _review_graph(seen).start("t", {}, checkpointer=cp)
    assert log_audit.verify(cp, "t").differences == []
    assert log_audit.verify_all(cp).ok

    [chunks] = store.records.values()
    chunks[0] = (chunks[0][0], b"tampered" + chunks[0][1][8:])  # one chunk rewritten

    [found] = log_audit.verify(cp, "t").differences
    assert found.startswith("seq 1: blob sha256:") and "does not hold the bytes" in found
    assert log_audit.verify_all(cp).differing == {"t": [found]}


def test_the_api_shows_pointers_and_on_request_the_texts(store: MemoryBlobStore) -> None:
    from tests.unit.test_api_support import ALICE, make_api

    cp, seen = _cp(store), []
    graph = _review_graph(seen)
    graph.start("t", {}, checkpointer=cp)
    api = make_api(cp=cp, graphs=[graph])

    kept = api.client.get("/threads/t/state", headers=ALICE).json()["state"]["text"]
    filled = api.client.get("/threads/t/state?texts=true", headers=ALICE).json()
    assert as_ref(kept) is not None and filled["state"]["text"] == DOC

    store.records.clear()  # the blob topic lost: said so, not served as a pointer
    gone = _cp(store, cp.log)  # a server with a cold cache
    answer = make_api(cp=gone, graphs=[graph]).client.get("/threads/t/state?texts=true",
                                                          headers=ALICE)
    assert answer.status_code == 500 and answer.json()["error"]["code"] == "blob_unreadable"


def test_fields_that_gain_and_lose_texts_step_by_step_read_right(
        store: MemoryBlobStore) -> None:
    """What holds a pointer is worked out from each delta (engine.blobstore._PointerMemo):
    a text replaced by a short one, a text appended to a list, a merge that brings one."""
    seen: list[tuple[str, list[str], dict[str, Any]]] = []
    g = line_graph(Doc, "gain_lose", ("shorten", lambda state: {"text": "short"}),
                   ("note", lambda state: {"notes": [DOC], "meta": {"k": DOC}}),
                   ("look", lambda state: seen.append((state.text, state.notes,
                                                       state.meta)) or {}))
    log = InMemoryEventLog(partitions=2)
    cp = _cp(store, log)

    g.compile().start("t", {"text": DOC, "notes": ["first"]}, checkpointer=cp)  # one run
    paused = g.compile(interrupt_before=["look"])
    paused.start("u", {"text": DOC, "notes": ["first"]}, checkpointer=cp)
    paused.resume("u", None, actor="cold process", checkpointer=_cp(store, log))

    assert seen == [("short", ["first", DOC], {"k": DOC})] * 2
    assert store.writes == 1


# --- found by review: each failed before its fix -------------------------------------------

def test_a_step_that_changes_nothing_keeps_the_pointers_it_was_given(
        store: MemoryBlobStore) -> None:
    """A node returning None and an edit with no values seal the state they follow: the
    log's, with pointers, not the texts the node saw (else the fold's state hash differs)."""
    from engine import log_audit

    g = line_graph(Doc, "noop", ("write", lambda state: {"text": DOC}),
                   ("noop", lambda state: None), ("review", lambda state: {"count": 2}))
    cp = _cp(store)

    g.compile().start("t", {}, checkpointer=cp)
    paused = g.compile(interrupt_before=["review"])
    paused.start("u", {}, checkpointer=cp)
    paused.update_state("u", {}, as_node="review", checkpointer=cp)

    for thread in ("t", "u"):
        view = cp.projection.get_thread(thread)
        assert view is not None and view.integrity_error is None
        assert log_audit.verify(cp, thread).differences == []
        assert all(DOC not in (e.snapshot or "") for e in logged(cp, thread))


def test_a_worker_step_that_changes_nothing_keeps_the_pointers(store: MemoryBlobStore) -> None:
    from tests.unit.test_api_support import drive

    g = line_graph(Doc, "noop_worker", ("write", lambda state: {"text": DOC}),
                   ("noop", lambda state: {}))
    graph, cp = g.compile(), _cp(store)
    graph.runner(cp).threads.start("w", {}, actor=None, mode="worker")

    drive(cp, [graph])

    view = cp.projection.get_thread("w")
    assert view is not None and view.status == "completed" and view.integrity_error is None


def test_a_retried_api_start_with_a_large_input_gets_the_first_answer(
        store: MemoryBlobStore) -> None:
    from tests.unit.test_api_support import ALICE, make_api

    api = make_api(cp=_cp(store))
    body = {"graph": "doc_approval", "input": {"text": DOC}}
    key = {**ALICE, "Idempotency-Key": "k"}
    first = api.client.post("/threads", json=body, headers=key)
    again = api.client.post("/threads", json=body, headers=key)

    assert first.status_code == again.status_code == 202
    assert again.headers.get("Idempotent-Replayed") == "true"


def test_with_offloading_off_pointers_written_before_are_still_read(
        store: MemoryBlobStore) -> None:
    log, seen, graph = _paused_in_another_process(store)

    off = Checkpointer(log=log, projection=LogProjection(log), blobs=Blobs(store, min_bytes=0))
    done = graph.resume("t", {"ok": True}, actor="bob", checkpointer=off)

    assert done.status == "completed" and seen == [DOC]


def test_without_any_store_a_pointer_fails_the_step_rather_than_reach_the_node(
        store: MemoryBlobStore) -> None:
    log, seen, graph = _paused_in_another_process(store)

    bare = Checkpointer(log=log, projection=LogProjection(log))
    done = graph.resume("t", {"ok": True}, actor="bob", checkpointer=bare)

    assert done.status == "failed" and seen == []
    assert done.error is not None and "no blob store is configured" in done.error.message


def _recorded_request_goes_to_a_blob(store: MemoryBlobStore, request: Any) -> None:
    """A node records `request` (holding DOC): it completes, DOC written once, its io a
    pointer."""
    def ask(state: Doc, ctx: NodeContext) -> dict[str, Any]:
        ctx.record_io("llm", request, {"text": "ok"})
        return {}

    cp = _cp(store)
    done = one_node_graph(Doc, "io_blob", "ask", ask).start("t", {}, checkpointer=cp)

    assert done.status == "completed" and store.writes == 1
    step = next(e for e in logged(cp, "t") if e.node == "ask")
    assert step.io is not None and BLOB_KEY in step.io and DOC not in step.io


def test_a_large_text_inside_a_tuple_is_offloaded_too(store: MemoryBlobStore) -> None:
    _recorded_request_goes_to_a_blob(store, ("system", DOC))


def test_objects_shaped_like_pointers_are_refused_from_inputs_nodes_and_edits(
        store: MemoryBlobStore) -> None:
    """Else an input could name any blob, another thread's too, and its node would read it."""
    from engine.errors import StateValidationError

    cp, seen = _cp(store), []
    _review_graph(seen).start("src", {}, checkpointer=cp)
    [stolen] = refs_in(logged(cp, "src")[1].ops())
    forged = {"meta": {"doc": {BLOB_KEY: stolen.digest, "bytes": stolen.size,
                               "at": [stolen.partition, *stolen.offsets]}}}
    graph = one_node_graph(Doc, "forge", "n", lambda state: forged)

    with pytest.raises(StateValidationError, match="reserved for blob pointers"):
        graph.start("t", forged, checkpointer=cp)
    assert graph.start("u", {}, checkpointer=cp).status == "failed"


# --- found by a second review: each failed before its fix ----------------------------------

class Open(BaseModel):
    meta: Annotated[Any, merge] = {}
    rec: Annotated[dict[str, Any], custom(lambda current, new: {
        k: tuple(v) if isinstance(v, list) else v for k, v in new.items()})] = {}


def _stolen(store: MemoryBlobStore, cp: Checkpointer) -> dict[str, Any]:
    """A pointer to another thread's document, as someone who saw its events could write."""
    _review_graph([]).start("victim", {}, checkpointer=cp)
    [ref] = refs_in(logged(cp, "victim")[1].ops())
    return {BLOB_KEY: ref.digest, "bytes": ref.size, "at": [ref.partition, *ref.offsets]}


def test_a_pointer_put_together_by_two_merges_is_refused(store: MemoryBlobStore) -> None:
    from engine.errors import StateValidationError

    cp = _cp(store)
    forged = _stolen(store, cp)
    half, rest = {BLOB_KEY: forged[BLOB_KEY], "bytes": forged["bytes"]}, {"at": forged["at"]}
    graph = one_node_graph(Open, "merge_forge", "n", lambda state: {"meta": rest})
    paused = one_node_graph(Open, "merge_forge", "n", lambda state: {}).with_interrupts(
        before=["n"], after=None)

    assert graph.start("t", {"meta": half}, checkpointer=cp).status == "failed"
    paused.start("u", {"meta": half}, checkpointer=cp)
    with pytest.raises(StateValidationError, match="reserved for blob pointers"):
        paused.update_state("u", {"meta": rest}, as_node="n", checkpointer=cp)


def test_a_pointer_whose_at_is_a_tuple_is_refused_too(store: MemoryBlobStore) -> None:
    from engine.errors import StateValidationError

    cp = _cp(store)
    forged = _stolen(store, cp)
    graph = one_node_graph(Open, "tuple_at", "n", lambda state: {})

    with pytest.raises(StateValidationError, match="reserved for blob pointers"):
        graph.start("t", {"rec": forged}, checkpointer=cp)


def test_verify_checks_every_copy_of_a_text_written_twice(store: MemoryBlobStore) -> None:
    """Two processes each meeting the same text write it twice; the head points at the
    second copy, so that is the one whose damage must be named."""
    from engine import log_audit

    log = InMemoryEventLog(partitions=2)
    g = line_graph(Doc, "twice", ("write", lambda state: {"text": DOC}),
                   ("shorten", lambda state: {"text": "short"}),
                   ("rewrite", lambda state: {"text": DOC}))
    graph = g.compile(interrupt_before=["rewrite"])
    graph.start("t", {}, checkpointer=_cp(store, log))
    cold = _cp(store, log)
    graph.resume("t", None, actor="x", checkpointer=cold)
    refs = [r for e in logged(cold, "t") for r in refs_in(e.ops())]
    assert refs[0].digest == refs[-1].digest and refs[0].offsets != refs[-1].offsets

    chunks, at = store.records[refs[-1].partition], refs[-1].offsets[0]
    chunks[at] = (chunks[at][0], b"tampered" + chunks[at][1][8:])

    [found] = log_audit.verify(cold, "t").differences
    assert found.startswith("seq 5: blob " + refs[-1].digest)


def test_decisions_and_recorded_io_shaped_like_pointers_are_refused(
        store: MemoryBlobStore) -> None:
    from engine.errors import InvalidDecisionError

    cp, seen = _cp(store), []
    forged = _stolen(store, cp)
    graph = _review_graph(seen)
    graph.start("t", {}, checkpointer=cp)
    with pytest.raises(InvalidDecisionError, match="reserved for blob pointers"):
        graph.resume("t", {"doc": forged}, actor="mallory", checkpointer=cp)

    def ask(state: Doc, ctx: NodeContext) -> dict[str, Any]:
        ctx.record_io("llm", {"doc": forged}, "ok")
        return {}

    done = one_node_graph(Doc, "io_forge", "ask", ask).start("u", {}, checkpointer=cp)
    assert done.status == "failed" and done.error is not None
    assert "reserved for blob pointers" in done.error.message


def test_a_large_str_subclass_in_recorded_io_is_offloaded(store: MemoryBlobStore) -> None:
    from enum import StrEnum

    Big = StrEnum("Big", {"DOC": DOC})  # a str subclass, as Markup would be
    _recorded_request_goes_to_a_blob(store, {"prompt": Big.DOC})
