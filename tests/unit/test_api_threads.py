"""The HTTP API on the in-memory log: starts, decisions, idempotent retries, refusals.

Every refusal is checked to append nothing (the log's end offsets do not move).
"""

from __future__ import annotations

import itertools
import json
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from consumers.api_commands import thread_id_for_key
from engine.acceptance import accepted_history
from engine.checkpointer import Checkpointer
from engine.eventlog import EventLog
from engine.events import EventType
from engine.projection import LogProjection
from tests.unit.test_api_support import ALICE, BOB, Api, make_api, make_cp, signed
from tests.waiting import race


@pytest.fixture
def api() -> Api:
    return make_api()


def _error(response: Any) -> str:
    return str(response.json()["error"]["code"])


# --- start ---------------------------------------------------------------------------------

def test_start_appends_thread_started_for_the_workers(api: Api) -> None:
    r = api.start("t1", input={"text": "hi"})
    assert r.status_code == 202
    assert r.json() == {"thread_id": "t1", "graph": "doc_approval", "status": "running", "seq": 0}
    [event] = api.events("t1")
    assert event.type is EventType.THREAD_STARTED and event.mode == "worker"
    assert event.actor == "alice"  # the token's actor, not anything in the body
    assert api.drive() == 2  # workers: write, then the interrupt before review
    assert api.cp.projection.require("t1").status == "interrupted"


def test_idempotency_key_names_the_thread_and_a_retry_gets_the_first_answer(api: Api) -> None:
    body = {"graph": "doc_approval", "input": {"text": "x"}}
    first = api.client.post("/threads", json=body, headers={**ALICE, "Idempotency-Key": "k-1"})
    assert first.status_code == 202 and "Idempotent-Replayed" not in first.headers
    assert first.json()["thread_id"] == thread_id_for_key("alice", "k-1")
    before = api.ends()
    again = api.client.post("/threads", json=body, headers={**ALICE, "Idempotency-Key": "k-1"})
    assert again.status_code == 202 and again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert api.ends() == before
    api.drive()  # still the same answer once the workers moved the thread on
    assert api.client.post("/threads", json=body,
                           headers={**ALICE, "Idempotency-Key": "k-1"}).json() == first.json()


def test_a_key_reused_for_another_request_is_refused(api: Api) -> None:
    headers = {**ALICE, "Idempotency-Key": "k-2"}
    api.client.post("/threads", json={"graph": "doc_approval", "input": {"text": "a"}},
                    headers=headers)
    before = api.ends()
    r = api.client.post("/threads", json={"graph": "doc_approval", "input": {"text": "b"}},
                        headers=headers)
    assert r.status_code == 409 and _error(r) == "idempotency_mismatch"
    assert api.ends() == before


def test_keys_are_per_actor_and_absent_keys_give_fresh_ids(api: Api) -> None:
    body = {"graph": "doc_approval"}
    a = api.client.post("/threads", json=body, headers={**ALICE, "Idempotency-Key": "same"})
    b = api.client.post("/threads", json=body, headers={**BOB, "Idempotency-Key": "same"})
    assert a.status_code == b.status_code == 202
    assert a.json()["thread_id"] != b.json()["thread_id"]
    c, d = (api.client.post("/threads", json=body, headers=ALICE) for _ in range(2))
    assert c.json()["thread_id"] != d.json()["thread_id"]
    uuid.UUID(c.json()["thread_id"])


def test_an_explicit_thread_id_is_idempotent_for_the_same_actor_and_input(api: Api) -> None:
    assert api.start("t2", input={"text": "x"}).status_code == 202
    before = api.ends()
    again = api.start("t2", input={"text": "x"})
    assert again.status_code == 202 and again.headers["Idempotent-Replayed"] == "true"
    other_input = api.start("t2", input={"text": "y"})
    other_actor = api.start("t2", input={"text": "x"}, headers=BOB)
    other_graph = api.start("t2", graph="asking")
    for r in (other_input, other_actor, other_graph):
        assert r.status_code == 409 and _error(r) == "thread_exists", r.json()
    assert api.ends() == before


@pytest.mark.parametrize(("body", "code"), [
    ({"graph": "nope"}, "unknown_graph"),
    ({"graph": "doc_approval", "input": {"no_such_field": 1}}, "invalid_input"),
    ({"graph": "doc_approval", "input": {"count": "three"}}, "invalid_input"),
    ({"graph": "doc_approval", "input": []}, "invalid_request"),
    ({"graph": "doc_approval", "thread_id": "a/b"}, "invalid_request"),
    ({"graph": "doc_approval", "thread_id": ""}, "invalid_request"),
    ({"graph": "doc_approval", "thread_id": " lead"}, "invalid_request"),
    ({"graph": "doc_approval", "thread_id": "."}, "invalid_request"),  # a URL drops it
    ({"graph": "doc_approval", "thread_id": ".."}, "invalid_request"),
    ({"graph": "doc_approval", "thread_id": "nul\u0000"}, "invalid_request"),
    ({"graph": "doc_approval", "actor": "mallory"}, "invalid_request"),
    ({"input": {}}, "invalid_request"),
])
def test_bad_starts_are_422_and_append_nothing(api: Api, body: dict[str, Any], code: str) -> None:
    before = api.ends()
    r = api.client.post("/threads", json=body, headers=ALICE)
    assert r.status_code == 422 and _error(r) == code, r.json()
    assert r.json()["error"]["message"]
    assert api.ends() == before


def test_unknown_graph_names_the_served_ones(api: Api) -> None:
    r = api.client.post("/threads", json={"graph": "nope"}, headers=ALICE)
    assert "doc_approval" in r.json()["error"]["message"]


def test_malformed_json_is_422(api: Api) -> None:
    r = api.client.post("/threads", content=b"{nope", headers={**ALICE,
                                                               "Content-Type": "application/json"})
    assert r.status_code == 422 and _error(r) == "invalid_request"


# --- decisions --------------------------------------------------------------------------------

def test_a_decision_is_recorded_for_the_authenticated_actor_and_workers_finish(api: Api) -> None:
    interrupt_id = api.waiting("d1")
    r = api.decide("d1", {"value": {"approved": True}, "interrupt_id": interrupt_id,
                          "reason": "looks right"})
    assert r.status_code == 202
    assert r.json() == {"thread_id": "d1", "seq": 3, "interrupt_id": interrupt_id,
                        "actor": "alice", "status": "running"}
    decision = api.events("d1")[-1]
    assert decision.type is EventType.DECISION_RECORDED
    assert (decision.actor, decision.causation_id, decision.reason) == \
        ("alice", interrupt_id, "looks right")
    assert len(api.events("d1")) == 4  # the API ran no node
    api.drive()
    view = api.cp.projection.require("d1")
    assert view.status == "completed" and view.state["notes"][-1] == "published"


def test_a_signed_webhook_decides_as_webhook_actor(api: Api) -> None:
    interrupt_id = api.waiting("d2")
    body = json.dumps({"value": {"approved": False}, "interrupt_id": interrupt_id}).encode()
    path = "/threads/d2/decisions"
    r = api.client.post(path, content=body, headers=signed(body, "crm", path=path))
    assert r.status_code == 202 and r.json()["actor"] == "webhook:crm"
    assert api.events("d2")[-1].actor == "webhook:crm"


@pytest.mark.parametrize(("case", "status", "code"), [
    ("unknown thread", 404, "thread_not_found"),
    ("not waiting", 409, "thread_not_waiting"),
    ("completed", 409, "thread_not_waiting"),
    ("stale interrupt", 409, "stale_interrupt"),
    ("missing value", 422, "invalid_request"),
    ("extra field", 422, "invalid_request"),
    ("NaN value", 422, "invalid_decision"),
    ("not an object", 422, "invalid_request"),
    ("graph not served", 409, "graph_mismatch"),
])
def test_refused_decisions_append_nothing(api: Api, case: str, status: int, code: str) -> None:
    api.waiting("w")
    api.waiting("done")
    api.decide("done", {"value": {"approved": False}})
    api.drive()
    api.start("r")  # running: the workers have not run it yet
    foreign = make_api(cp=api.cp, graphs=[])  # a server that does not serve doc_approval
    calls: dict[str, Callable[[], Any]] = {
        "unknown thread": lambda: api.decide("nobody", {"value": True}),
        "not waiting": lambda: api.decide("r", {"value": True}),
        "completed": lambda: api.decide("done", {"value": True}),
        "stale interrupt": lambda: api.decide("w", {"value": True, "interrupt_id": "w:9:review"}),
        "missing value": lambda: api.decide("w", {"reason": "no value"}),
        "extra field": lambda: api.decide("w", {"value": True, "actor": "mallory"}),
        "NaN value": lambda: api.client.post("/threads/w/decisions", content=b'{"value": NaN}',
                                             headers={**ALICE,
                                                      "Content-Type": "application/json"}),
        "not an object": lambda: api.decide("w", [1, 2]),  # type: ignore[arg-type]
        "graph not served": lambda: foreign.decide("w", {"value": True}),
    }
    before = api.ends()
    r = calls[case]()
    assert (r.status_code, _error(r)) == (status, code), r.json()
    assert r.json()["error"]["message"]
    assert api.ends() == before


def test_a_decision_with_an_idempotency_key_is_pinned_to_its_interrupt(api: Api) -> None:
    """Unpinned, its retry after the thread moved on would answer the next interrupt."""
    interrupt_id = api.waiting("keyed")
    keyed = {**ALICE, "Idempotency-Key": "k-decision"}
    before = api.ends()

    unpinned = api.client.post("/threads/keyed/decisions", json={"value": {"approved": True}},
                               headers=keyed)

    assert (unpinned.status_code, _error(unpinned)) == (422, "unpinned_webhook")
    assert "interrupt_id" in unpinned.json()["error"]["message"]
    assert api.ends() == before
    body = {"value": {"approved": True}, "interrupt_id": interrupt_id}
    first = api.client.post("/threads/keyed/decisions", json=body, headers=keyed)
    again = api.client.post("/threads/keyed/decisions", json=body, headers=keyed)
    assert (first.status_code, again.status_code) == (202, 202)
    assert again.json() == first.json() and again.headers["Idempotent-Replayed"] == "true"
    assert [e.type for e in api.events("keyed")].count(EventType.DECISION_RECORDED) == 1


def test_a_thread_run_inline_is_not_decided_through_the_api(api: Api) -> None:
    inline = api.graphs[0]
    assert inline.start("inline", {}, checkpointer=api.cp).status == "interrupted"
    before = api.ends()
    r = api.decide("inline", {"value": {"approved": True}})
    assert r.status_code == 409 and _error(r) == "not_on_workers"
    assert "amber resume" in r.json()["error"]["message"]
    assert api.ends() == before


def test_an_identical_retry_gets_the_first_answer(api: Api) -> None:
    interrupt_id = api.waiting("rp")
    body = {"value": {"approved": True}, "interrupt_id": interrupt_id}
    first = api.decide("rp", body)
    before = api.ends()
    again = api.decide("rp", body)
    assert again.status_code == 202 and again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    api.drive()  # the thread completes; the retry is still recognised from the log
    late = api.decide("rp", {"value": {"approved": True}})
    assert late.status_code == 202 and late.json() == first.json()
    assert [e.type for e in api.events("rp")].count(EventType.DECISION_RECORDED) == 1
    assert api.ends() != before  # only the workers appended
    other_actor = api.decide("rp", body, headers=BOB)
    other_value = api.decide("rp", {"value": {"approved": 1}, "interrupt_id": interrupt_id})
    assert other_actor.status_code == other_value.status_code == 409


def test_a_late_retry_after_the_next_interrupt_is_recognised_not_applied(api: Api) -> None:
    first_id = api.waiting("ask", graph="asking")
    first = api.decide("ask", {"value": "Report", "interrupt_id": first_id})
    assert first.status_code == 202
    api.drive()
    view = api.cp.projection.require("ask")
    assert view.status == "interrupted" and view.interrupt is not None
    assert view.interrupt.id != first_id
    before = api.ends()
    retry = api.decide("ask", {"value": "Report", "interrupt_id": first_id})
    assert retry.status_code == 202 and retry.json() == first.json()
    changed = api.decide("ask", {"value": "Other", "interrupt_id": first_id})
    assert changed.status_code == 409 and _error(changed) == "stale_interrupt"
    assert api.ends() == before


def test_concurrent_decisions_on_one_interrupt_one_wins(api: Api) -> None:
    for round_ in range(5):
        thread = f"race-{round_}"
        interrupt_id = api.waiting(thread)

        def post(who: str, headers: dict[str, str], thread: str = thread,
                 interrupt_id: str = interrupt_id) -> Callable[[], Any]:
            return lambda: api.decide(thread, {"value": {"approved": who == "alice"},
                                               "interrupt_id": interrupt_id}, headers=headers)

        results = race({"alice": post("alice", ALICE), "bob": post("bob", BOB)}, 30)
        codes = sorted(r.status_code for r in results.values())
        assert codes == [202, 409], {k: r.json() for k, r in results.items()}
        history = accepted_history(api.events(thread))
        decisions = [e for e in history.accepted if e.type is EventType.DECISION_RECORDED]
        assert len(decisions) == 1
        winner = next(k for k, r in results.items() if r.status_code == 202)
        assert decisions[0].actor == winner
        loser = next(r for r in results.values() if r.status_code == 409)
        # the loser was refused before appending, or appended and lost the race (rejected)
        assert len(history.rejected) == (1 if _error(loser) == "conflict" else 0)


# --- projection behind -----------------------------------------------------------------------

class _Stalled(LogProjection):
    """A projection that never catches up (no projector running)."""

    def projected_offset(self, partition: int) -> int:
        return 0


def test_a_projection_that_cannot_catch_up_is_503_and_appends_nothing() -> None:
    live = make_api()
    live.waiting("s")
    log: EventLog = live.cp.log
    stalled = make_api(cp=Checkpointer(log=log, projection=_Stalled(log),
                                       catchup_timeout_s=0.05), graphs=live.graphs)
    before = log.end_offsets()
    for r in (stalled.decide("s", {"value": True}), stalled.start("new")):
        assert r.status_code == 503 and _error(r) == "projection_behind", r.json()
        assert r.headers["Retry-After"]
    assert log.end_offsets() == before


# --- reads -----------------------------------------------------------------------------------

def test_reads_thread_history_state_and_lists(api: Api) -> None:
    interrupt_id = api.waiting("r1")
    api.waiting("r2", graph="asking")
    api.start("r3")
    one = api.client.get("/threads/r1", headers=ALICE).json()
    assert one["status"] == "interrupted" and one["seq"] == 2 and one["mode"] == "worker"
    assert one["interrupt"]["id"] == interrupt_id and one["state"]["text"] == "!"
    waiting = api.client.get("/threads?status=interrupted", headers=ALICE).json()["threads"]
    assert {t["thread_id"] for t in waiting} == {"r1", "r2"}
    asking = api.client.get("/threads?graph=asking", headers=ALICE).json()["threads"]
    assert [t["thread_id"] for t in asking] == ["r2"]
    paged = [api.client.get(f"/threads?limit=1&offset={i}", headers=ALICE).json()["threads"]
             for i in range(4)]
    assert [len(p) for p in paged] == [1, 1, 1, 0]
    assert len({p[0]["thread_id"] for p in paged[:3]}) == 3
    state0 = api.client.get("/threads/r1/state?seq=0", headers=ALICE).json()
    assert state0["seq"] == 0 and state0["state"]["text"] == ""
    assert api.client.get("/threads/r1/state", headers=ALICE).json()["state"]["text"] == "!"


def test_history_pages_through_every_event(api: Api) -> None:
    api.waiting("h")
    api.decide("h", {"value": {"approved": True}})
    api.drive()
    seen: list[dict[str, Any]] = []
    after = -1
    while after is not None:
        page = api.client.get(f"/threads/h/history?after_seq={after}&limit=2",
                              headers=ALICE).json()
        seen += page["events"]
        after = page["next_after_seq"]
    assert [e["seq"] for e in seen] == list(range(7))
    assert [e["type"] for e in seen][3] == "DecisionRecorded" and seen[3]["actor"] == "alice"
    assert all(e["prev_hash"] == p["hash"] for p, e in itertools.pairwise(seen))


@pytest.mark.parametrize(("path", "status", "code"), [
    ("/threads/ghost", 404, "thread_not_found"),
    ("/threads/ghost/history", 404, "thread_not_found"),
    ("/threads/ghost/state", 404, "thread_not_found"),
    ("/threads/r/state?seq=5", 404, "checkpoint_not_found"),
    ("/threads/r/history?limit=0", 422, "invalid_request"),
    ("/threads/r/history?after_seq=-2", 422, "invalid_request"),
    ("/threads?status=sleeping", 422, "invalid_request"),
    ("/threads?limit=100000", 422, "invalid_request"),
    ("/nowhere", 404, "not_found"),
])
def test_bad_reads_are_4xx(api: Api, path: str, status: int, code: str) -> None:
    api.start("r")
    r = api.client.get(path, headers=ALICE)
    assert (r.status_code, _error(r)) == (status, code), r.json()


def test_a_thread_is_readable_right_after_its_start() -> None:
    cp = make_cp()
    api = make_api(cp=cp)
    assert api.start("fresh").status_code == 202
    assert api.client.get("/threads/fresh", headers=ALICE).json()["status"] == "running"


def test_healthz_and_openapi_need_no_token(api: Api) -> None:
    assert api.client.get("/healthz").json() == {"status": "ok"}
    spec = api.client.get("/openapi.json").json()
    assert {"/threads", "/threads/{thread_id}/decisions", "/threads/{thread_id}",
            "/threads/{thread_id}/history", "/threads/{thread_id}/state",
            "/healthz"} <= set(spec["paths"])
    assert {"BearerToken", "WebhookSignature"} <= set(spec["components"]["securitySchemes"])


class _CountingProjection(LogProjection):
    """Counts reads of a thread's full row (its state included).

    Here every read of a thread goes through get_thread once; thread_graph's does
    not count, as on PostgreSQL it reads only two columns.
    """

    def __init__(self, log: EventLog) -> None:
        super().__init__(log)
        self.rows = self.graphs = 0

    @property
    def full_reads(self) -> int:
        return self.rows - self.graphs

    def get_thread(self, thread_id: str) -> Any:
        self.rows += 1
        return super().get_thread(thread_id)

    def thread_graph(self, thread_id: str) -> Any:
        self.graphs += 1
        return super().thread_graph(thread_id)


def test_a_decision_reads_the_threads_full_row_once() -> None:
    api = make_api(cp=make_cp(projection=_CountingProjection))
    counting = api.cp.projection
    assert isinstance(counting, _CountingProjection)
    api.waiting("big")
    counting.rows = counting.graphs = 0

    assert api.decide("big", {"value": {"approved": True}}).status_code == 202
    assert counting.full_reads == 1  # graph and mode come from thread_graph, not the row
