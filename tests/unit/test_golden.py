"""Golden history: a recorded approval thread that must verify and fold forever.

tests/golden/approval_thread.jsonl was written once by tests/golden/make_golden.py
and is checked in. If a change to canonical JSON, the hash recipe, the delta
fold or the decoder breaks these tests, old histories on real topics would
stop verifying too: change the code, never regenerate the file.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from engine.acceptance import Rejection, accepted_history
from engine.canonical import state_hash
from engine.chain import compute_hash, hash_is_valid
from engine.delta import State, fold
from engine.events import Event, EventType
from engine.ledger import rebuild
from schemas import default_codec

GOLDEN = Path(__file__).resolve().parent.parent / "golden" / "approval_thread.jsonl"


def _records() -> list[dict[str, Any]]:
    lines = GOLDEN.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line]


@pytest.fixture
def golden() -> list[Event]:
    return [Event.from_record(r) for r in _records()]


def test_the_golden_thread_is_the_recorded_approval_flow(golden: list[Event]) -> None:
    assert [e.type for e in golden] == [
        EventType.THREAD_STARTED, EventType.NODE_COMPLETED, EventType.INTERRUPTED,
        EventType.DECISION_RECORDED, EventType.NODE_COMPLETED, EventType.THREAD_COMPLETED]
    assert {e.thread_id for e in golden} == {"golden-approval-0001"}


def test_every_recorded_hash_recomputes() -> None:
    for record in _records():
        assert compute_hash(record) == record["hash"], f"seq {record['seq']}"
        assert hash_is_valid(Event.from_record(record))


def test_the_chain_is_accepted_whole(golden: list[Event]) -> None:
    history = accepted_history(golden)

    assert history.accepted == golden
    assert history.rejected == []


def test_folding_the_deltas_reproduces_every_state_hash_and_snapshot(
        golden: list[Event]) -> None:
    state: State = {}
    for event in golden:
        state = fold(state, event.ops())
        assert state_hash(state) == event.state_hash, f"seq {event.seq}"
        if event.snapshot is not None:
            assert state == event.snapshot_state(), f"seq {event.seq}"

    assert state == golden[-1].snapshot_state()


def test_the_ledger_view_of_the_golden_thread(golden: list[Event]) -> None:
    view = rebuild(golden)

    assert view is not None
    assert view.integrity_error is None
    assert view.status == "completed"
    assert view.state == golden[-1].snapshot_state()
    assert (view.head.seq, view.head.hash) == (5, golden[-1].hash)


def test_each_golden_record_survives_the_current_codec(golden: list[Event]) -> None:
    codec = default_codec()

    for event in golden:
        assert Event.from_record(codec.decode(codec.encode(event.to_record()))) == event


def test_a_tampered_decision_breaks_the_chain_at_that_event(golden: list[Event]) -> None:
    decision = golden[3]
    forged = dataclasses.replace(decision, actor="mallory@example.com")
    tampered = [*golden[:3], forged, *golden[4:]]

    history = accepted_history(tampered)

    assert not hash_is_valid(forged)
    assert history.accepted == golden[:3]
    assert [(e.seq, reason) for e, reason in history.rejected] == [
        (3, Rejection.BAD_HASH), (4, Rejection.GAP), (5, Rejection.GAP)]


def test_a_tampered_event_with_a_recomputed_hash_breaks_the_next_link(
        golden: list[Event]) -> None:
    # A forger who also fixes the hash still cannot make the next event point to it.
    decision = golden[3]
    forged = dataclasses.replace(decision, delta='[{"field":"decision","op":"set","value":1}]')
    forged = forged.with_hash(compute_hash(forged.to_record()))

    history = accepted_history([*golden[:3], forged, *golden[4:]])

    assert history.accepted == [*golden[:3], forged]
    assert [(e.seq, reason) for e, reason in history.rejected] == [
        (4, Rejection.BAD_PREV_HASH), (5, Rejection.GAP)]


def test_a_tampered_snapshot_no_longer_matches_the_fold(golden: list[Event]) -> None:
    last = golden[-1]
    snapshot = json.loads(last.snapshot or "{}")
    snapshot["request"]["amount"] = 12500
    forged = dataclasses.replace(last, snapshot=json.dumps(snapshot))

    assert not hash_is_valid(forged)
    assert accepted_history([*golden[:-1], forged]).rejected == [(forged, Rejection.BAD_HASH)]
