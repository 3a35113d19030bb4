"""The schema versions kept in this folder, indexed by their CRC-64-AVRO fingerprint.

Every published version stays here forever (`event_vN.avsc`); the highest N is
the current writer and reader schema. Nothing is fetched from a registry server.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from importlib import resources
from typing import Any

from fastavro import parse_schema
from fastavro.schema import fingerprint, to_parsing_canonical_form

_VERSION = re.compile(r"^event_v(\d+)\.avsc$")


@dataclass(frozen=True, slots=True, kw_only=True)
class SchemaVersion:
    """One kept version of the event envelope."""

    version: int
    raw: dict[str, Any]
    parsed: Any
    fingerprint: bytes  # 8 bytes, little-endian, as written after C3 01


def _load(version: int, text: str) -> SchemaVersion:
    raw = json.loads(text)
    # fastavro's hex is already the little-endian byte order the spec writes.
    fp = bytes.fromhex(fingerprint(to_parsing_canonical_form(raw), "CRC-64-AVRO"))
    # The write hint marks the schema as parsed: without it fastavro parses it again on
    # every read and write, which made decoding ~3x slower.
    parsed = parse_schema(raw, _force=True)
    return SchemaVersion(version=version, raw=raw, parsed=parsed, fingerprint=fp)


def kept_versions() -> list[SchemaVersion]:
    """Every `event_vN.avsc` in this package, oldest first."""
    found: list[SchemaVersion] = []
    for entry in resources.files("schemas").iterdir():
        match = _VERSION.match(entry.name)
        if match:
            found.append(_load(int(match.group(1)), entry.read_text(encoding="utf-8")))
    return sorted(found, key=lambda v: v.version)
