"""POST /threads/{id}/forks on the in-memory log: forks the workers continue, retries
answered once, refusals that append nothing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from engine.events import EventType
from tests.unit.test_api_support import ALICE, BOB, Api, make_api


@pytest.fixture
def api() -> Api:
    return make_api()


def _fork(api: Api, source: str, body: dict[str, Any],
          headers: dict[str, str] | None = None) -> Any:
    return api.client.post(f"/threads/{source}/forks", json=body, headers=headers or ALICE)


def _completed(api: Api, thread: str, approved: bool) -> None:
    api.waiting(thread)
    assert api.decide(thread, {"value": {"approved": approved}}).status_code == 202
    api.drive()
    assert api.cp.projection.require(thread).status == "completed"


def test_a_fork_at_the_question_waits_for_its_own_answer_then_workers_finish(
        api: Api) -> None:
    _completed(api, "src", approved=True)

    r = _fork(api, "src", {"seq": 2, "thread_id": "what-if", "reason": "had bob said no"})
    decided = api.decide("what-if", {"value": {"approved": False},
                                     "interrupt_id": "what-if:0:review"}, headers=BOB)
    api.drive()

    assert r.status_code == 202, r.json()
    body = r.json()
    assert (body["thread_id"], body["status"], body["seq"]) == ("what-if", "interrupted", 0)
    assert (body["parent"]["thread_id"], body["parent"]["seq"]) == ("src", 2)
    assert decided.status_code == 202
    fork = api.cp.projection.require("what-if")
    assert fork.status == "completed" and "published" not in fork.state["notes"]
    assert api.events("what-if")[0].actor == "alice"
    assert api.cp.projection.require("src").state["notes"][-1] == "published"


def test_a_fork_of_a_running_checkpoint_is_run_by_the_workers(api: Api) -> None:
    _completed(api, "src", approved=True)

    r = _fork(api, "src", {"seq": 3, "thread_id": "again"})  # the decision: review runs next
    api.drive()

    assert r.status_code == 202 and r.json()["status"] == "running"
    assert [e.node for e in api.events("again")[1:-1]] == ["review", "publish"]


def test_a_retried_fork_gets_the_first_answer_and_appends_nothing(api: Api) -> None:
    _completed(api, "src", approved=False)
    keyed = {**ALICE, "Idempotency-Key": "fork-1"}
    first = _fork(api, "src", {"seq": 2}, keyed)
    before = api.ends()

    again = _fork(api, "src", {"seq": 2}, keyed)
    other_seq = _fork(api, "src", {"seq": 1}, keyed)
    by_bob = _fork(api, "src", {"seq": 2, "thread_id": first.json()["thread_id"]}, BOB)

    assert first.status_code == again.status_code == 202
    assert again.json() == first.json() and again.headers["Idempotent-Replayed"] == "true"
    assert (other_seq.status_code, other_seq.json()["error"]["code"]) == \
        (409, "idempotency_mismatch")
    assert (by_bob.status_code, by_bob.json()["error"]["code"]) == (409, "thread_exists")
    assert api.ends() == before


@pytest.mark.parametrize(("case", "status", "code"), [
    ("unknown thread", 404, "thread_not_found"),
    ("no such seq", 404, "checkpoint_not_found"),
    ("where it ended", 409, "nothing_to_run"),
    ("onto an existing thread", 409, "thread_exists"),
    ("negative seq", 422, "invalid_request"),
    ("graph not served", 409, "graph_mismatch"),
])
def test_refused_forks_append_nothing(api: Api, case: str, status: int, code: str) -> None:
    _completed(api, "src", approved=True)
    api.waiting("other")
    last = len(api.events("src")) - 1
    foreign = make_api(cp=api.cp, graphs=[])
    calls: dict[str, Callable[[], Any]] = {
        "unknown thread": lambda: _fork(api, "nobody", {"seq": 0}),
        "no such seq": lambda: _fork(api, "src", {"seq": last + 1}),
        "where it ended": lambda: _fork(api, "src", {"seq": last}),
        "onto an existing thread": lambda: _fork(api, "src", {"seq": 2, "thread_id": "other"}),
        "negative seq": lambda: _fork(api, "src", {"seq": -1}),
        "graph not served": lambda: _fork(foreign, "src", {"seq": 2}),
    }
    before = api.ends()

    r = calls[case]()

    assert (r.status_code, r.json()["error"]["code"]) == (status, code), r.json()
    assert api.ends() == before
    assert EventType.THREAD_FORKED not in {e.type for e in api.events("other")}
