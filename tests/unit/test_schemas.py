"""The Avro envelope: codec, old versions, bad bytes, and the compatibility gate."""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import io
import json
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from fastavro import parse_schema, schemaless_writer
from fastavro.schema import to_parsing_canonical_form
from hypothesis import given
from hypothesis import strategies as st

from engine.acceptance import accepted_history
from engine.chain import compute_hash, hash_is_valid
from engine.eventlog import Position, decode_delivery, encode_event
from engine.events import Event
from schemas.codec import HEADER_LEN, MARKER, EventCodec, default_codec
from schemas.compat import check_compatibility
from schemas.errors import (
    DecodeError,
    EncodeError,
    IncompatibleSchemaError,
    NotSingleObjectError,
    SchemaError,
    TruncatedEventError,
    UnknownSchemaError,
)
from schemas.registry import SchemaVersion, kept_versions
from tests.eventbuild import chain, full_event

GOLDEN = Path(__file__).resolve().parent.parent / "golden" / "schema_fingerprints.json"
V2_FIELDS = ("mode", "reason", "parent")


def _crc64_avro(data: bytes) -> int:
    """CRC-64-AVRO (Rabin) exactly as the Avro specification's reference code."""
    empty = 0xC15D213AA4D7A795
    table = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (empty & -(fp & 1))
        table.append(fp)
    fp = empty
    for byte in data:
        fp = (fp >> 8) ^ table[(fp ^ byte) & 0xFF]
    return fp


def _version(number: int, raw: dict[str, Any]) -> SchemaVersion:
    canonical = to_parsing_canonical_form(raw).encode("utf-8")
    return SchemaVersion(version=number, raw=raw,
                         parsed=parse_schema(raw, _write_hint=False, _force=True),
                         fingerprint=_crc64_avro(canonical).to_bytes(8, "little"))


def _write_with(version: SchemaVersion, record: dict[str, Any]) -> bytes:
    """Single-object encoding by a writer that only knows `version`."""
    out = io.BytesIO(MARKER + version.fingerprint)
    out.seek(0, io.SEEK_END)
    schemaless_writer(out, version.parsed, record)
    return out.getvalue()


def _v1_record(event: Event) -> dict[str, Any]:
    """The record a v1 writer produced for this event, hashed by that writer."""
    names = {f["name"] for f in kept_versions()[0].raw["fields"]}
    record = {k: v for k, v in event.to_record().items() if k in names}
    return {**record, "hash": compute_hash(record)}


# ---------------------------------------------------------------- codec


def test_an_event_round_trips_through_the_current_codec() -> None:
    event = full_event()

    assert Event.from_record(default_codec().decode(encode_event(event))) == event


def test_bytes_start_with_the_marker_and_the_spec_fingerprint_of_the_current_schema() -> None:
    # CRC-64-AVRO of the parsing canonical form, little-endian: what any Avro reader expects.
    current = kept_versions()[-1]
    expected = _crc64_avro(to_parsing_canonical_form(current.raw).encode("utf-8"))

    data = encode_event(full_event())

    assert data[:2] == b"\xc3\x01"
    assert data[2:HEADER_LEN] == expected.to_bytes(8, "little") == current.fingerprint


@pytest.mark.parametrize("change", [
    {"seq": "three"}, {"type": "Exploded"}, {"graph": None}, {"seq": 2**63},
    # fastavro would write these as the long 1, silently: the hash covers 1.5 and True.
    {"occurred_at": 1.5}, {"seq": True},
])
def test_a_record_that_does_not_fit_the_schema_is_refused(change: dict[str, Any]) -> None:
    record = {**full_event().to_record(), **change}

    with pytest.raises(EncodeError):
        default_codec().encode(record)


def test_a_record_missing_a_required_field_is_refused() -> None:
    record = full_event().to_record()
    del record["thread_id"]

    with pytest.raises(EncodeError):
        default_codec().encode(record)


# ---------------------------------------------------------------- old versions


def test_an_event_written_with_v1_is_read_with_v2_fields_defaulted_and_its_hash_holds() -> None:
    v1 = kept_versions()[0]
    old = dataclasses.replace(full_event(), mode=None, reason=None, parent=None)
    record = _v1_record(old)

    decoded = default_codec().decode(_write_with(v1, record))

    assert default_codec().writer_of(_write_with(v1, record)).version == 1
    assert {k: decoded[k] for k in V2_FIELDS} == dict.fromkeys(V2_FIELDS)
    assert {k: decoded[k] for k in record} == record
    event = Event.from_record(decoded)
    assert hash_is_valid(event)
    assert event.hash == record["hash"]


def test_a_thread_whose_schema_changed_midway_is_accepted_whole() -> None:
    v1 = kept_versions()[0]
    events = chain("t-upgraded", 4)
    wire = [_write_with(v1, _v1_record(e)) for e in events[:2]]
    wire += [encode_event(e) for e in events[2:]]

    decoded = [Event.from_record(default_codec().decode(b)) for b in wire]

    history = accepted_history(decoded)
    assert history.accepted == events
    assert history.rejected == []


def test_an_unknown_fingerprint_is_named() -> None:
    data = encode_event(full_event())
    foreign = MARKER + b"\x01\x02\x03\x04\x05\x06\x07\x08" + data[HEADER_LEN:]

    with pytest.raises(UnknownSchemaError) as caught:
        default_codec().decode(foreign)

    assert caught.value.fingerprint == "0102030405060708"


@pytest.mark.parametrize("data", [b"", b"\xc3", b"{\"seq\": 1}", b"\xc3\x02" + b"\x00" * 20])
def test_bytes_without_the_single_object_marker_are_refused(data: bytes) -> None:
    with pytest.raises(NotSingleObjectError):
        default_codec().decode(data)


def test_trailing_bytes_after_the_body_are_refused() -> None:
    with pytest.raises(DecodeError):
        default_codec().decode(encode_event(full_event()) + b"\x00")


# ---------------------------------------------------------------- bad bytes


_VALID = encode_event(full_event())


def _decode_or_schema_error(data: bytes) -> dict[str, Any] | None:
    """Decode; a SchemaError is a correct refusal, any other exception fails the test."""
    try:
        return default_codec().decode(data)
    except SchemaError:
        return None


def test_every_truncation_of_a_valid_event_is_a_decode_error() -> None:
    for cut in range(len(_VALID)):
        with pytest.raises((TruncatedEventError, DecodeError)):
            default_codec().decode(_VALID[:cut])


@given(st.binary(max_size=200))
def test_random_bytes_only_ever_raise_schema_errors(data: bytes) -> None:
    _decode_or_schema_error(data)


@given(st.sampled_from([v.fingerprint for v in kept_versions()]), st.binary(max_size=300))
def test_random_bodies_behind_a_known_fingerprint_only_ever_raise_schema_errors(
        fingerprint: bytes, body: bytes) -> None:
    _decode_or_schema_error(MARKER + fingerprint + body)


@given(st.integers(0, len(_VALID) - 1), st.integers(HEADER_LEN, len(_VALID)),
       st.lists(st.tuples(st.integers(HEADER_LEN, len(_VALID) - 1), st.integers(0, 255)),
                max_size=4))
def test_mutated_and_truncated_events_only_ever_raise_schema_errors(
        start: int, stop: int, flips: list[tuple[int, int]]) -> None:
    data = bytearray(_VALID)
    for index, value in flips:
        data[index] = value
    _decode_or_schema_error(bytes(data[:stop]))
    _decode_or_schema_error(bytes(data[:start]) + bytes(data[stop:]))


@given(st.binary(max_size=120) | st.builds(lambda cut: _VALID[:cut], st.integers(0, len(_VALID))))
def test_decode_delivery_turns_any_bytes_into_an_event_or_a_located_error(data: bytes) -> None:
    delivery = decode_delivery(Position(3, 41), b"key", data, partitions=None)

    assert (delivery.event is None) != (delivery.error is None)
    if delivery.error is not None:
        assert (delivery.error.partition, delivery.error.offset) == (3, 41)
    assert delivery.raw == data


# ---------------------------------------------------------------- compatibility


def test_the_kept_versions_are_compatible() -> None:
    versions = kept_versions()

    assert [v.version for v in versions] == list(range(1, len(versions) + 1))
    check_compatibility()
    check_compatibility(versions)


def _field(fields: list[dict[str, Any]], name: str) -> dict[str, Any]:
    return next(f for f in fields if f["name"] == name)


def _drop(fields: list[dict[str, Any]], name: str) -> None:
    fields.remove(_field(fields, name))


_BAD_V3: dict[str, Callable[[list[dict[str, Any]]], None]] = {
    "new field without a default":
        lambda fs: fs.append({"name": "priority", "type": "int"}),
    "new non-null field": lambda fs: fs.append({"name": "tenant", "type": "string",
                                                "default": ""}),
    "new nullable field defaulting to a value": lambda fs: fs.append(
        {"name": "lane", "type": ["string", "null"], "default": "a"}),
    "type change string to int": lambda fs: _field(fs, "engine_version").update(type="int"),
    "nested type change": lambda fs: _field(fs, "graph")["type"]["fields"][1].update(
        type="long"),
    "union branch removed": lambda fs: _field(fs, "actor").update(type="null"),
    "enum symbol removed": lambda fs: _field(fs, "type")["type"]["symbols"].remove(
        "ThreadCancelled"),
    "field removed": lambda fs: _drop(fs, "route"),
    "promotion that changes the JSON value": lambda fs: _field(fs, "seq").update(
        type="double"),
}


def _v3(mutate: Callable[[list[dict[str, Any]]], None]) -> SchemaVersion:
    raw = copy.deepcopy(kept_versions()[-1].raw)
    raw["doc"] = "Version 3 of the envelope (test)."
    mutate(raw["fields"])
    return _version(3, raw)


@pytest.mark.parametrize("mutate", list(_BAD_V3.values()), ids=list(_BAD_V3))
def test_an_incompatible_new_version_is_refused(
        mutate: Callable[[list[dict[str, Any]]], None]) -> None:
    with pytest.raises(IncompatibleSchemaError):
        check_compatibility([*kept_versions(), _v3(mutate)])


def test_the_refusal_names_the_field() -> None:
    bad = _v3(_BAD_V3["type change string to int"])

    with pytest.raises(IncompatibleSchemaError, match="engine_version"):
        check_compatibility([*kept_versions(), bad])


def test_a_compatible_new_version_passes_and_keeps_old_hashes() -> None:
    good = _v3(lambda fs: fs.append({"name": "tenant", "type": ["null", "string"],
                                     "default": None}))
    versions = [*kept_versions(), good]
    check_compatibility(versions)
    codec = EventCodec(versions=versions)
    written_v2 = encode_event(full_event())

    record = codec.decode(written_v2)

    assert record["tenant"] is None
    assert compute_hash(record) == record["hash"]


def test_why_hash_changing_promotions_are_refused() -> None:
    # Avro itself allows long→double; but an old seq 3 would be read as 3.0 and the
    # recomputed hash would no longer match: old events would look tampered.
    loose = _v3(_BAD_V3["promotion that changes the JSON value"])
    codec = EventCodec(versions=[*kept_versions(), loose])

    record = codec.decode(encode_event(full_event()))

    assert record["seq"] == 3.0 and isinstance(record["seq"], float)
    assert compute_hash(record) != record["hash"]


# ---------------------------------------------------------------- published schemas


def _schema_files() -> dict[str, dict[str, Any]]:
    files = resources.files("schemas")
    return {entry.name: json.loads(entry.read_text(encoding="utf-8"))
            for entry in files.iterdir() if entry.name.endswith(".avsc")}


def test_every_published_schema_is_pinned_and_unchanged() -> None:
    pinned = json.loads(GOLDEN.read_text(encoding="utf-8"))
    found = {}
    for name, raw in _schema_files().items():
        canonical = json.dumps(raw, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        found[name] = {
            "fingerprint": _crc64_avro(
                to_parsing_canonical_form(raw).encode("utf-8")).to_bytes(8, "little").hex(),
            "sha256": hashlib.sha256(canonical.encode("utf-8")).hexdigest(),
        }

    assert set(found) == set(pinned), (
        "a schema file was added or deleted: published versions are kept forever, and a new "
        "one is pinned in tests/golden/schema_fingerprints.json when it is published")
    for name in pinned:
        assert found[name] == pinned[name], f"{name} was edited after publication"


def test_the_registry_uses_the_pinned_fingerprints() -> None:
    pinned = json.loads(GOLDEN.read_text(encoding="utf-8"))

    for version in kept_versions():
        assert version.fingerprint.hex() == pinned[f"event_v{version.version}.avsc"][
            "fingerprint"]
