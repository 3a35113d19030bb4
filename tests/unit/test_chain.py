"""The hash chain and derived event ids, pinned to the recipe documented in engine/chain.py."""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
from typing import Any

import pytest

from engine.chain import GENESIS_HASH, compute_hash, hash_is_valid
from engine.eventlog import encode_event
from engine.events import Event, EventType, derive_event_id
from schemas import default_codec
from tests.eventbuild import chain, full_event


def recipe_hash(record: dict[str, Any]) -> str:
    """The recipe of engine/chain.py's docstring, as a third party would write it.

    Deliberately imports nothing from engine: if the engine drifts from its
    documented recipe, this and the engine disagree.
    """
    body = {k: v for k, v in record.items() if k != "hash" and v is not None}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    digest = hashlib.sha256(bytes.fromhex(record["prev_hash"]) + text.encode("utf-8"))
    return digest.hexdigest()


def test_the_documented_recipe_recomputes_the_engine_hash() -> None:
    for event in [*chain("t-recipe", 4), full_event()]:
        assert recipe_hash(event.to_record()) == event.hash
        assert hash_is_valid(event)


def test_the_recipe_recomputes_from_the_wire_record() -> None:
    # What an auditor reading the topic has: the decoded Avro record, not our dataclass.
    event = full_event()

    record = default_codec().decode(encode_event(event))

    assert recipe_hash(record) == event.hash


def test_the_first_event_chains_to_64_zeros_and_each_next_to_its_predecessor() -> None:
    events = chain("t-links", 5)

    assert GENESIS_HASH == "0" * 64
    assert events[0].prev_hash == GENESIS_HASH
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(events))
    assert len({e.hash for e in events}) == 5


def test_null_fields_are_left_out_of_the_hashed_bytes() -> None:
    # So a field added to the schema later (null in old events) keeps old hashes valid.
    event = chain("t-null", 1)[0]
    record = event.to_record()

    with_extra_null = {**record, "a_field_from_the_future": None}

    assert compute_hash(with_extra_null) == event.hash


def _tampered_values(value: Any) -> list[Any]:
    """Other values of the same shape (nested records: each of their fields changed)."""
    if isinstance(value, bool):
        return [not value]
    if isinstance(value, int):
        return [value + 1]
    if isinstance(value, str):  # first character changed, so hex stays hex
        return [("1" if value[:1] != "1" else "2") + value[1:]]
    if isinstance(value, EventType):
        return [EventType.NODE_FAILED if value != EventType.NODE_FAILED else
                EventType.NODE_COMPLETED]
    if dataclasses.is_dataclass(value):
        return [dataclasses.replace(value, **{f.name: other})  # type: ignore[type-var]
                for f in dataclasses.fields(value)
                for other in _tampered_values(getattr(value, f.name))]
    raise AssertionError(f"no tamper rule for {value!r}")


def _tampered_copies(event: Event) -> list[tuple[str, Event]]:
    out = []
    for field in dataclasses.fields(event):
        if field.name == "hash":
            continue
        value = getattr(event, field.name)
        for other in _tampered_values(value):
            out.append((field.name, dataclasses.replace(event, **{field.name: other})))
        if field.default is None and value is not None:  # an optional field dropped
            out.append((f"{field.name}=None", dataclasses.replace(event, **{field.name: None})))
    return out


_TAMPERED = _tampered_copies(full_event())


def test_every_envelope_field_is_covered_by_tampering() -> None:
    covered = {name.split("=")[0] for name, _ in _TAMPERED}

    assert covered == {f.name for f in dataclasses.fields(Event)} - {"hash"}


@pytest.mark.parametrize(("field", "tampered"), _TAMPERED, ids=[n for n, _ in _TAMPERED])
def test_tampering_with_any_field_invalidates_the_hash(field: str, tampered: Event) -> None:
    assert not hash_is_valid(tampered)
    assert recipe_hash(tampered.to_record()) != tampered.hash


def test_a_changed_prev_hash_changes_the_hash_even_with_equal_contents() -> None:
    event = chain("t-prev", 2)[1]
    rechained = dataclasses.replace(event, prev_hash="ff" * 32)

    assert compute_hash(rechained.to_record()) != event.hash


def test_event_ids_are_derived_and_stable() -> None:
    # Pinned literals: the derivation never changes without a new event-id version.
    assert derive_event_id("thread-1", 7, EventType.NODE_COMPLETED, "review") == \
        "17fdd445-79e7-5a29-95b1-f87e8b92f1c9"
    assert derive_event_id("thread-1", 0, EventType.THREAD_STARTED, None) == \
        "bf6642cf-4cd2-5514-944e-ff25e837b5c9"
    assert derive_event_id("t", 1, EventType.NODE_COMPLETED, "n") == \
        derive_event_id("t", 1, EventType.NODE_COMPLETED, "n")


@pytest.mark.parametrize("other", [
    ("thread-2", 7, EventType.NODE_COMPLETED, "review"),
    ("thread-1", 8, EventType.NODE_COMPLETED, "review"),
    ("thread-1", 7, EventType.NODE_FAILED, "review"),
    ("thread-1", 7, EventType.NODE_COMPLETED, "send"),
    ("thread-1", 7, EventType.NODE_COMPLETED, None),
    ("thread-17", 7, EventType.NODE_COMPLETED, "review"),
])
def test_event_ids_differ_when_any_input_differs(other: tuple[Any, ...]) -> None:
    base = derive_event_id("thread-1", 7, EventType.NODE_COMPLETED, "review")

    assert derive_event_id(*other) != base


def test_a_retried_step_gets_the_same_event_id_but_a_different_hash() -> None:
    first = chain("t-retry", 3)[2]
    retry = dataclasses.replace(first, occurred_at=first.occurred_at + 5)

    assert retry.event_id == first.event_id
    assert compute_hash(retry.to_record()) != first.hash
