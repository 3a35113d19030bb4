"""Avro single-object encoding of events: `C3 01` + 8-byte fingerprint + body.

Writers always use the current schema. Readers look the writer schema up by
fingerprint among the kept versions and resolve it to the current schema, so
events written years ago stay readable after the envelope evolves.
"""

from __future__ import annotations

import io
from functools import lru_cache
from typing import Any

from fastavro import schemaless_reader, schemaless_writer
from fastavro.validation import ValidationError, validate

from schemas.errors import (
    DecodeError,
    EncodeError,
    NotSingleObjectError,
    TruncatedEventError,
    UnknownSchemaError,
)
from schemas.registry import SchemaVersion, kept_versions

MARKER = b"\xc3\x01"
HEADER_LEN = len(MARKER) + 8


class EventCodec:
    """Encodes records with the current schema; decodes any kept version."""

    def __init__(self, *, versions: list[SchemaVersion]) -> None:
        if not versions:
            raise ValueError("at least one schema version is required")
        self.current = versions[-1]
        self._by_fingerprint = {v.fingerprint: v for v in versions}
        self._led_by_ids = {v.fingerprint for v in versions if _leads_with_ids(v)}

    def encode(self, record: dict[str, Any]) -> bytes:
        """Serialize one event record; raises EncodeError if it does not fit."""
        self._check(record)
        out = io.BytesIO()
        out.write(MARKER)
        out.write(self.current.fingerprint)
        try:
            schemaless_writer(out, self.current.parsed, record, strict_allow_default=True)
        except (ValueError, TypeError, KeyError, AttributeError, OverflowError) as e:
            raise EncodeError(f"event does not fit schema v{self.current.version}: {e}") from e
        return out.getvalue()

    def _check(self, record: dict[str, Any]) -> None:
        """Refuse what fastavro's writer would coerce (True or 1.5 written as the long 1).

        The hash covers the exact values, so a coerced wire record would read back as
        tampered. The boolean check is cheap (~25 µs); the second pass only builds the message.
        """
        if validate(record, self.current.parsed, raise_errors=False):
            return
        try:
            validate(record, self.current.parsed, raise_errors=True)
        except ValidationError as e:
            raise EncodeError(f"event does not fit schema v{self.current.version}: {e}") from e
        raise EncodeError(f"event does not fit schema v{self.current.version}")

    def writer_of(self, data: bytes) -> SchemaVersion:
        """The kept schema version that wrote these bytes."""
        if len(data) < HEADER_LEN or data[:2] != MARKER:
            raise NotSingleObjectError("not Avro single-object encoding (no C3 01 marker)")
        fp = data[2:HEADER_LEN]
        try:
            return self._by_fingerprint[fp]
        except KeyError:
            raise UnknownSchemaError(fp.hex()) from None

    def thread_id_bytes(self, data: bytes | None) -> bytes | None:
        """The UTF-8 bytes of the record's thread_id, read without decoding the record.

        A few µs instead of ~15 for a full decode, so a reader looking for one
        thread's events can skip the others'. None when the bytes cannot be read
        that way (unknown schema, another field order, truncated): decode to know.
        """
        if not isinstance(data, bytes) or data[:2] != MARKER \
                or data[2:HEADER_LEN] not in self._led_by_ids:
            return None  # a Kafka tombstone's value is None: a dead letter, as decode says
        event_id, at = _avro_bytes(data, HEADER_LEN)
        return None if event_id is None else _avro_bytes(data, at)[0]

    def decode(self, data: bytes) -> dict[str, Any]:
        """Read one event record in the shape of the current schema."""
        writer = self.writer_of(data)
        body = io.BytesIO(data[HEADER_LEN:])
        try:
            record = schemaless_reader(body, writer.parsed, self.current.parsed)
        except EOFError as e:
            raise TruncatedEventError(f"event body truncated: {e}") from e
        except Exception as e:  # fastavro raises assorted types on corrupt bodies
            raise DecodeError(f"undecodable event body: {type(e).__name__}: {e}") from e
        if not isinstance(record, dict):
            raise DecodeError("event body is not a record")
        if body.read(1):
            raise DecodeError("trailing bytes after the event body")
        return record


def _leads_with_ids(version: SchemaVersion) -> bool:
    """Whether a version's records start with the strings event_id, then thread_id."""
    lead = [(f["name"], f["type"]) for f in version.raw["fields"][:2]]
    return lead == [("event_id", "string"), ("thread_id", "string")]


def _avro_bytes(data: bytes, at: int) -> tuple[bytes | None, int]:
    """An Avro string/bytes value at `at` (zigzag varint length, then the bytes) and
    where the next value starts; None for a value that runs past the end."""
    shift = raw = 0
    while at < len(data) and shift < 64:
        byte = data[at]
        at += 1
        raw |= (byte & 0x7F) << shift
        if not byte & 0x80:
            length = (raw >> 1) ^ -(raw & 1)
            end = at + length
            return (data[at:end], end) if length >= 0 and end <= len(data) else (None, at)
        shift += 7
    return None, at


@lru_cache(maxsize=1)
def default_codec() -> EventCodec:
    """The codec over every schema version shipped in this package."""
    return EventCodec(versions=kept_versions())
