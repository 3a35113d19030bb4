"""The fold of accepted events into a thread's view (shared by projector, runner, auditor)."""

from __future__ import annotations

import dataclasses

from engine.acceptance import Head, Rejection
from engine.canonical import state_hash
from engine.chain import compute_hash
from engine.delta import append_op, fold, merge_op, set_op, unset_op
from engine.events import Event, EventType, ForkOrigin, InterruptInfo
from engine.ledger import advance, mark, rebuild
from tests.eventbuild import T0, chain, step

_ASK = InterruptInfo(id="int-1", node="review", when="before", payload='{"q":"ok?"}')


def _approval_thread() -> list[Event]:
    """started → draft → interrupted → decision → completed, with every op kind."""
    e0, s = step(None, {}, [set_op("msgs", []), set_op("pending", True)], mode="inline")
    e1, s = step(e0, s, [append_op("msgs", ["draft"]), merge_op("meta", {"v": 1})], node="draft")
    e2, s = step(e1, s, [], type_=EventType.INTERRUPTED, node="review", interrupt=_ASK,
                 with_snapshot=True)
    e3, s = step(e2, s, [set_op("approved", True)], type_=EventType.DECISION_RECORDED,
                 node="review", actor="alice", causation_id="int-1")
    e4, s = step(e3, s, [unset_op("pending")], type_=EventType.THREAD_COMPLETED, node=None,
                 with_snapshot=True)
    return [e0, e1, e2, e3, e4]


def test_rebuild_folds_every_accepted_event() -> None:
    events = _approval_thread()

    view = rebuild(events)

    assert view is not None
    assert view.state == {"msgs": ["draft"], "meta": {"v": 1}, "approved": True}
    assert view.state == events[-1].snapshot_state()
    assert view.head == Head(4, events[-1].hash)
    assert view.status == "completed"
    assert view.interrupt is None
    assert view.integrity_error is None
    assert (view.created_at, view.updated_at) == (events[0].occurred_at, events[-1].occurred_at)
    assert view.mode == "inline"  # carried from the first event; later ones say nothing


def test_status_and_open_interrupt_follow_the_events() -> None:
    events = _approval_thread()
    seen = []
    view = None
    for event in events:
        view = advance(view, event).view
        assert view is not None
        seen.append((view.status, view.interrupt))

    assert seen == [("running", None), ("running", None), ("interrupted", _ASK),
                    ("running", None), ("completed", None)]


def test_an_edit_keeps_the_thread_waiting_unless_it_answers_the_interrupt() -> None:
    events = _approval_thread()[:3]
    waiting = rebuild(events)
    assert waiting is not None
    state = waiting.state

    plain, _ = step(events[-1], state, [set_op("note", "x")], type_=EventType.STATE_EDITED,
                    node="review", actor="bob")
    answer, _ = step(events[-1], state, [set_op("note", "x")], type_=EventType.STATE_EDITED,
                     node="review", actor="bob", causation_id="int-1")

    kept = advance(waiting, plain).view
    closed = advance(waiting, answer).view
    assert kept is not None and closed is not None
    assert (kept.status, kept.interrupt) == ("interrupted", _ASK)
    assert (closed.status, closed.interrupt) == ("running", None)


def test_a_rejected_event_leaves_the_view_unchanged() -> None:
    events = chain("t", 3)
    view = rebuild(events)

    outcome = advance(view, events[1])

    assert outcome.rejection is Rejection.STALE_SEQ
    assert outcome.view == view


def test_a_state_hash_that_does_not_match_the_fold_is_recorded_not_hidden() -> None:
    e0, s0 = step(None, {}, [set_op("a", 1)])
    lying, _ = step(e0, s0, [set_op("a", 2)])
    lying = dataclasses.replace(lying, state_hash=state_hash({"a": 3}))
    lying = lying.with_hash(_rehash(lying))

    view = rebuild([e0, lying])

    assert view is not None
    assert view.head.seq == 1  # the chain accepted it: the hash is valid
    assert view.integrity_error is not None and "seq 1" in view.integrity_error


def test_a_delta_that_cannot_apply_marks_the_thread_and_keeps_the_state() -> None:
    e0, s0 = step(None, {}, [set_op("a", "text")])
    bad, _ = step(e0, s0, [set_op("b", 1)])
    bad = dataclasses.replace(bad, delta='[{"field":"a","op":"append","values":[1]}]')
    bad = bad.with_hash(_rehash(bad))

    view = rebuild([e0, bad])

    assert view is not None
    assert view.state == {"a": "text"}
    assert view.integrity_error is not None and "delta does not apply" in view.integrity_error


def test_the_first_integrity_error_is_kept() -> None:
    view = rebuild(chain("t", 1))
    assert view is not None

    marked = mark(mark(view, "first"), "second")

    assert marked.integrity_error == "first"


def test_a_fork_keeps_its_origin() -> None:
    origin = ForkOrigin(thread_id="parent", seq=4, hash="ab" * 32)
    e0, s = step(None, {}, [set_op("a", 1)], type_=EventType.THREAD_FORKED, parent=origin,
                 occurred_at=T0)
    e1, _ = step(e0, s, [set_op("a", 2)])

    view = rebuild([e0, e1])

    assert view is not None
    assert view.parent == origin
    assert view.state == fold({"a": 1}, [set_op("a", 2)])


def _rehash(event: Event) -> str:
    """The valid hash of an edited event: a writer that lies consistently."""
    return compute_hash(event.to_record())
