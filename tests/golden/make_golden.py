"""Write tests/golden/approval_thread.jsonl: a recorded human-approval thread.

Run once; the output is checked in and must stay verifiable forever:
    .venv/bin/python tests/golden/make_golden.py

Each line is one event as its Avro record (the input of the hash recipe), in
log order. Fixed clock and ids, so re-running gives the same file for as long
as the engine's recipe, id derivation and version are unchanged; when they
change, the checked-in file is NOT regenerated: old histories must still verify.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from engine.canonical import canonical_text
from engine.chain import GENESIS_HASH, Draft, seal
from engine.delta import State, append_op, fold, merge_op, set_op, unset_op
from engine.events import Event, EventType, GraphRef, InterruptInfo

OUT = Path(__file__).resolve().parent / "approval_thread.jsonl"
THREAD = "golden-approval-0001"
GRAPH = GraphRef(name="expense_approval", fingerprint="sha256:" + "5e" * 32)
T0 = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z, microseconds
INTERRUPT = InterruptInfo(
    id="golden-approval-0001/review/2", node="review", when="before",
    payload=canonical_text({"question": "Approve 1250 EUR?", "draft": "Konferenz in Zürich"}))

# (type, node, delta, extra Draft fields), in thread order.
STEPS: list[tuple[EventType, str | None, list[dict[str, Any]], dict[str, Any]]] = [
    (EventType.THREAD_STARTED, None,
     [set_op("request", {"amount": 1250, "currency": "EUR", "purpose": "Konferenz in Zürich"}),
      set_op("messages", []), set_op("pending", True)],
     {"mode": "inline", "actor": "api:bob"}),
    (EventType.NODE_COMPLETED, "draft",
     [append_op("messages", ["Draft: reimburse 1250 EUR for Konferenz in Zürich"]),
      merge_op("draft", {"text": "Reimburse 1250 EUR", "version": 1})],
     {"route": {"next": "review"},
      "io": {"llm": {"request": "draft a reimbursement", "response": "Reimburse 1250 EUR"}}}),
    (EventType.INTERRUPTED, "review", [], {"interrupt": INTERRUPT, "with_snapshot": True}),
    (EventType.DECISION_RECORDED, "review",
     [set_op("decision", {"approved": True, "comment": "ok ✓"})],
     {"actor": "alice@example.com", "causation_id": INTERRUPT.id, "reason": "within budget"}),
    (EventType.NODE_COMPLETED, "send",
     [merge_op("draft", {"sent": True}), append_op("messages", ["Sent to accounting"])],
     {"route": {"next": "__end__"}}),
    (EventType.THREAD_COMPLETED, None, [unset_op("pending")], {"with_snapshot": True}),
]


def build() -> list[Event]:
    events: list[Event] = []
    state: State = {}
    for seq, (type_, node, delta, extra) in enumerate(STEPS):
        state = fold(state, delta)
        draft = Draft(thread_id=THREAD, seq=seq, type=type_, node=node,
                      occurred_at=T0 + seq * 61_000_000, graph=GRAPH, delta=delta,
                      state_after=state, **extra)
        events.append(seal(draft, prev_hash=events[-1].hash if events else GENESIS_HASH))
    return events


def main() -> None:
    lines = [json.dumps(e.to_record(), sort_keys=True, ensure_ascii=False) for e in build()]
    OUT.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {len(lines)} events to {OUT}")


if __name__ == "__main__":
    main()
