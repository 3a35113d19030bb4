"""Backward-compatibility check: the current schema must read every kept version.

Implements the Avro schema-resolution rules that matter for our envelope
(records, enums, unions, primitive promotion) plus rules of our own, because the
hash chain is computed over the decoded record and old events must keep their
hashes: a field added after v1 must be optional with default null (null fields
are left out of the hashed bytes), no field may be removed (its value would
vanish from the hashed bytes), and only promotions that leave the JSON value
unchanged are allowed (int→long, float→double; int→double would turn 3 into 3.0).
"""

from __future__ import annotations

from typing import Any

from schemas.errors import IncompatibleSchemaError
from schemas.registry import SchemaVersion, kept_versions

_PROMOTIONS = {("int", "long"), ("float", "double")}


def _kind(schema: Any) -> str:
    if isinstance(schema, list):
        return "union"
    if isinstance(schema, dict):
        return str(schema["type"])
    return str(schema)


def _problems(writer: Any, reader: Any, path: str) -> list[str]:
    """Reasons why data written with `writer` cannot be read with `reader`."""
    if isinstance(writer, list):
        return [p for i, w in enumerate(writer) for p in _branch(w, reader, f"{path}|{i}")]
    if isinstance(reader, list):
        return _branch(writer, reader, path)
    wk, rk = _kind(writer), _kind(reader)
    if wk == rk == "record":
        return _record(writer, reader, path)
    if wk == rk == "enum":
        missing = set(writer["symbols"]) - set(reader["symbols"])
        if missing and "default" not in reader:
            return [f"{path}: enum symbols {sorted(missing)} unknown to the reader"]
        return []
    if wk == rk or (wk, rk) in _PROMOTIONS:
        return []
    return [f"{path}: {wk} cannot be read as {rk}"]


def _branch(writer: Any, reader_union: Any, path: str) -> list[str]:
    options = reader_union if isinstance(reader_union, list) else [reader_union]
    if any(not _problems(writer, r, path) for r in options):
        return []
    return [f"{path}: no reader branch accepts writer type {_kind(writer)}"]


def _record(writer: dict[str, Any], reader: dict[str, Any], path: str) -> list[str]:
    written = {f["name"]: f for f in writer["fields"]}
    out: list[str] = []
    for field in reader["fields"]:
        where = f"{path}.{field['name']}"
        if field["name"] in written:
            out += _problems(written[field["name"]]["type"], field["type"], where)
        elif "default" not in field:
            out.append(f"{where}: added without a default")
    kept = {f["name"] for f in reader["fields"]}
    out += [f"{path}.{name}: removed, but old events hash its value"
            for name in written if name not in kept]
    return out


def _added_fields_are_null_optional(first: SchemaVersion, current: SchemaVersion) -> list[str]:
    old = {f["name"] for f in first.raw["fields"]}
    out: list[str] = []
    for field in current.raw["fields"]:
        if field["name"] in old:
            continue
        nullable = isinstance(field["type"], list) and field["type"][0] == "null"
        if not (nullable and field.get("default", "missing") is None):
            out.append(f"Event.{field['name']}: added fields must be ['null', ...] default null")
    return out


def check_compatibility(versions: list[SchemaVersion] | None = None) -> None:
    """Raise IncompatibleSchemaError unless the newest version reads all others."""
    versions = versions if versions is not None else kept_versions()
    current = versions[-1]
    problems = _added_fields_are_null_optional(versions[0], current)
    for old in versions[:-1]:
        problems += [f"v{old.version}: {p}" for p in _problems(old.raw, current.raw, "Event")]
    if problems:
        raise IncompatibleSchemaError("; ".join(problems))
