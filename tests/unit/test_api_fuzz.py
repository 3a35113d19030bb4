"""OpenAPI-driven fuzzing (schemathesis) of the API on the in-memory log: no 5xx, ever.

Every operation gets generated valid and invalid requests, with and without
credentials; every answer must be a documented status with a body matching
the schema, and no client input may produce a 5xx.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import pytest
import schemathesis
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from schemathesis import checks

from tests.unit.test_api_support import ALICE, make_api

_api = make_api()
for _thread in ("fz-1", "fz-2"):  # threads for the fuzzer's ids to hit now and then
    _api.waiting(_thread)
_api.waiting("fz-ask", graph="asking")

schema = schemathesis.openapi.from_asgi("/openapi.json", _api.client.app)

CHECKS = [checks.not_a_server_error, checks.status_code_conformance,
          checks.content_type_conformance, checks.response_schema_conformance]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@schema.parametrize()
@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
def test_no_input_makes_a_server_error(case: schemathesis.Case[Any]) -> None:
    case.call_and_validate(headers=ALICE, checks=CHECKS)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@schema.parametrize()
@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
def test_unauthenticated_input_never_reaches_the_log(case: schemathesis.Case[Any]) -> None:
    before = _api.ends()
    response = case.call_and_validate(checks=CHECKS)
    if case.path != "/healthz" and response.status_code != 405:  # 405: a method no route has
        assert response.status_code == 401, (case.method, case.path)
    assert _api.ends() == before


# --- values the schema cannot constrain: any JSON as input and as a decision ----------------

_WEIRD = st.sampled_from(["\ud800", "a\udfffb", "\x00", "nul\x00", "\u2028", "é", "🙂", " "])
_TEXT = st.one_of(st.text(max_size=20), _WEIRD)
_JSON = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True),
              _TEXT),
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(_TEXT, inner, max_size=4)),
    max_leaves=12)
_FIELDS = st.sampled_from(["text", "count", "notes", "meta", "approved", "other"])
_VALID_INPUT = st.fixed_dictionaries({}, optional={
    "text": _TEXT, "count": st.integers(), "notes": st.lists(_TEXT, max_size=3),
    "meta": st.dictionaries(_TEXT, _JSON, max_size=3), "approved": st.none() | st.booleans()})
_INPUT = st.one_of(_VALID_INPUT, _VALID_INPUT, st.dictionaries(_FIELDS, _JSON, max_size=4))
_MOSTLY_NONE = st.one_of(st.none(), st.none(), _TEXT)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(input=_INPUT, value=_JSON, interrupt_id=_MOSTLY_NONE, reason=_MOSTLY_NONE,
       thread_id=_MOSTLY_NONE)
def test_any_json_as_input_or_decision_is_answered_below_500(
        input: dict[str, Any], value: Any, interrupt_id: str | None, reason: str | None,
        thread_id: str | None) -> None:
    api = make_api()
    body = {"graph": "doc_approval", "input": input}
    if thread_id is not None:
        body["thread_id"] = thread_id
    started = api.client.post("/threads", content=json.dumps(body).encode(),
                              headers={**ALICE, "Content-Type": "application/json"})
    assert started.status_code in (202, 422), started.json()
    event(f"start {started.status_code}")
    if started.status_code != 202:
        assert api.ends() == {p: 0 for p in range(api.cp.log.partitions)}
        return
    api.drive()
    thread = started.json()["thread_id"]
    decision = {"value": value, "interrupt_id": interrupt_id, "reason": reason}
    before = api.ends()
    answer = api.client.post(f"/threads/{quote(thread, safe='')}/decisions",
                             content=json.dumps(decision).encode(),
                             headers={**ALICE, "Content-Type": "application/json"})
    assert answer.status_code in (202, 409, 422), answer.json()
    event(f"decision {answer.status_code} {answer.json().get('error', {}).get('code', '')}")
    if answer.status_code != 202:
        assert api.ends() == before
    api.drive()  # whatever was recorded, the workers can fold it
    assert api.client.get(f"/threads/{quote(thread, safe='')}/history",
                          headers=ALICE).status_code == 200
