"""A codec the adapters cannot use is refused when they are built, naming the setting."""

from __future__ import annotations

import pytest

import engine.eventlog_kafka as eventlog_kafka
from engine.errors import SettingsError
from engine.eventlog_confluent import ConfluentEventLog
from engine.eventlog_kafka import KafkaEventLog


@pytest.mark.parametrize("adapter", [KafkaEventLog, ConfluentEventLog])
def test_an_unknown_codec_is_refused_by_every_adapter(adapter: type) -> None:
    with pytest.raises(SettingsError) as caught:
        adapter(bootstrap="127.0.0.1:1", topic="t.events", compression="snappy")
    assert caught.value.variable == "AMBER_KAFKA_COMPRESSION" and "snappy" in str(caught.value)


def test_zstd_without_its_package_is_refused_saying_what_to_install(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(eventlog_kafka.kafka_codec, "has_zstd", lambda: False)
    with pytest.raises(SettingsError, match="zstandard"):
        KafkaEventLog(bootstrap="127.0.0.1:1", topic="t.events", compression="zstd")


@pytest.mark.parametrize("codec", ["none", "gzip", "zstd"])
def test_known_codecs_are_accepted(codec: str) -> None:
    KafkaEventLog(bootstrap="127.0.0.1:1", topic="t.events", compression=codec).close()  # type: ignore[arg-type]
