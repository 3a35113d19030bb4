"""Settings: one typed object from AMBER_* variables that fails naming the bad one."""

from __future__ import annotations

import dataclasses

import pytest

from engine.errors import SettingsError
from engine.settings import Settings


def test_defaults_when_nothing_is_set() -> None:
    settings = Settings.from_env({})

    assert settings == Settings()
    assert settings.partitions == 12
    assert settings.events_topic == "amber.events"


def test_every_variable_is_read() -> None:
    env = {
        "AMBER_KAFKA_BOOTSTRAP": "kafka:9093", "AMBER_DATABASE_URL": "postgres://u:p@db/x",
        "AMBER_TOPIC_PREFIX": "prod", "AMBER_PARTITIONS": "24", "AMBER_SNAPSHOT_EVERY": "7",
        "AMBER_ACK_TIMEOUT_S": "2.5", "AMBER_CATCHUP_TIMEOUT_S": "4", "AMBER_API_TOKENS": "t=a",
        "AMBER_OUTBOX_DIR": "/tmp/out", "AMBER_LLM_URL": "http://llm",
        "AMBER_PROJECTOR_GATHER_MS": "0", "AMBER_KAFKA_COMPRESSION": "ZSTD",
        "AMBER_WORKER_BATCH_S": "0.5",
    }

    settings = Settings.from_env(env)

    assert settings == Settings(
        kafka_bootstrap="kafka:9093", database_url="postgres://u:p@db/x", topic_prefix="prod",
        partitions=24, snapshot_every=7, ack_timeout_s=2.5, catchup_timeout_s=4.0,
        api_tokens="t=a", outbox_dir="/tmp/out", llm_url="http://llm", projector_gather_ms=0,
        kafka_compression="zstd", worker_batch_s=0.5)
    assert settings.events_topic == "prod.events"


def test_from_env_reads_the_process_environment_by_default(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AMBER_PARTITIONS", "3")

    assert Settings.from_env().partitions == 3


@pytest.mark.parametrize(("variable", "value"), [
    ("AMBER_PARTITIONS", "abc"),
    ("AMBER_PARTITIONS", "0"),
    ("AMBER_PARTITIONS", "1.5"),
    ("AMBER_SNAPSHOT_EVERY", "-1"),
    ("AMBER_ACK_TIMEOUT_S", "soon"),
    ("AMBER_ACK_TIMEOUT_S", "0"),
    ("AMBER_ACK_TIMEOUT_S", "nan"),
    ("AMBER_CATCHUP_TIMEOUT_S", "inf"),
    ("AMBER_PROJECTOR_GATHER_MS", "-5"),
    ("AMBER_WORKER_BATCH_S", "0"),
    ("AMBER_DATABASE_URL", "mysql://x"),
    ("AMBER_KAFKA_BOOTSTRAP", "   "),
    ("AMBER_TOPIC_PREFIX", ""),
    ("AMBER_OUTBOX_DIR", " "),
    ("AMBER_KAFKA_COMPRESSION", "snappy"),
])
def test_a_bad_variable_fails_naming_it(variable: str, value: str) -> None:
    env = {"AMBER_PARTITIONS": "12", variable: value}

    with pytest.raises(SettingsError) as caught:
        Settings.from_env(env)

    assert caught.value.variable == variable
    assert variable in str(caught.value)
    assert repr(value) in str(caught.value)


def test_settings_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        Settings().partitions = 3  # type: ignore[misc]
