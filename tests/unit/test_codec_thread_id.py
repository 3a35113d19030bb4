"""EventCodec.thread_id_bytes: a record's thread id read without decoding it.

Readers skip other threads' records on its word, so it must never name a thread
the full decode would not, and must step aside (None) when it cannot tell.
"""

from __future__ import annotations

import dataclasses

from hypothesis import given
from hypothesis import strategies as st

from engine.eventlog import encode_event, naming
from schemas.codec import HEADER_LEN, MARKER, EventCodec, default_codec
from schemas.registry import kept_versions
from tests.eventbuild import chain


@given(st.text(min_size=1, max_size=300).filter(lambda s: "\x00" not in s))
def test_it_reads_the_id_the_full_decode_reads(thread_id: str) -> None:
    raw = encode_event(chain(thread_id, 1)[0])

    assert default_codec().thread_id_bytes(raw) == thread_id.encode("utf-8")
    assert default_codec().decode(raw)["thread_id"] == thread_id


def test_every_kept_version_is_read_this_way() -> None:
    """A version with another field order would need its own reader (or none)."""
    codec = default_codec()
    for version in kept_versions():
        data = MARKER + version.fingerprint + b"\x02a\x04t1"  # event_id "a", thread_id "t1"
        assert codec.thread_id_bytes(data) == b"t1", version.version


def test_it_steps_aside_when_it_cannot_tell() -> None:
    raw = encode_event(chain("t-aside", 1)[0])
    codec = default_codec()

    assert codec.thread_id_bytes(b"\x00 not an event") is None
    assert codec.thread_id_bytes(None) is None  # a Kafka tombstone
    assert codec.thread_id_bytes(raw[:2] + b"\xff" * 8 + raw[HEADER_LEN:]) is None  # unknown
    assert codec.thread_id_bytes(raw[:HEADER_LEN + 3]) is None  # cut inside the ids
    assert codec.thread_id_bytes(MARKER + raw[2:HEADER_LEN] + b"\x03") is None  # length < 0
    assert codec.thread_id_bytes(MARKER + raw[2:HEADER_LEN] + b"\xff" * 12) is None


def test_a_version_led_by_other_fields_is_never_read_this_way() -> None:
    current = kept_versions()[-1]
    fields = current.raw["fields"]
    swapped = {**current.raw, "fields": [fields[1], fields[0], *fields[2:]]}
    other = dataclasses.replace(current, raw=swapped, fingerprint=b"\x01" * 8)
    codec = EventCodec(versions=[other])

    assert codec.thread_id_bytes(MARKER + other.fingerprint + b"\x02a\x04t1") is None


def test_naming_passes_the_thread_and_what_cannot_be_told_and_nothing_else() -> None:
    mine, theirs = (encode_event(chain(t, 1)[0]) for t in ("t-mine", "t-theirs"))
    keep = naming("t-mine")

    assert (keep(mine), keep(theirs), keep(b"junk"), keep(None)) == (True, False, True, True)
    assert naming(None)(theirs)
