"""One typed settings object read from AMBER_* environment variables.

Reading fails fast with the name of the bad variable, so a misconfigured
worker dies at start instead of at its first step.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from engine.errors import SettingsError

T = TypeVar("T")

KafkaClient = Literal["kafka-python", "confluent"]  # the EventLog adapters to choose from
KAFKA_CLIENTS: tuple[KafkaClient, ...] = ("kafka-python", "confluent")
# How appends compress their record batches; every consumer reads them all alike.
Compression = Literal["none", "gzip", "zstd"]
COMPRESSIONS: tuple[Compression, ...] = ("none", "gzip", "zstd")


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    kafka_bootstrap: str = "127.0.0.1:9092"
    kafka_client: KafkaClient = "kafka-python"  # or "confluent" (librdkafka, the `fast` extra)
    database_url: str = "postgresql://amber:amber@127.0.0.1:5432/amber"
    topic_prefix: str = "amber"
    partitions: int = 12
    kafka_compression: Compression = "none"  # of record batches: gzip or zstd cut big states
    snapshot_every: int = 50
    # Texts this long (UTF-8 bytes) go to the blob topic, the event holds a pointer
    # (engine.blobs); 0 keeps every text inline, as before blobs existed.
    blob_min_bytes: int = 64 * 1024
    ack_timeout_s: float = 30.0
    catchup_timeout_s: float = 10.0
    # How long the broker holds a projector fetch to batch records. Commands fold the
    # unprojected tail themselves, so only raw projection readers see this delay; with
    # 20 ms rather than 5 the projector commits less often and HITL ran 7-10% faster.
    projector_gather_ms: int = 20
    # A worker steps its runnable threads for at most this long before it polls again
    # (plus the node running then): kept well inside the group's 300 s poll interval.
    worker_batch_s: float = 10.0
    api_tokens: str = ""  # "token=actor,token2=actor2"
    outbox_dir: str = "outbox"
    llm_url: str = ""

    @property
    def events_topic(self) -> str:
        return f"{self.topic_prefix}.events"

    @property
    def blobs_topic(self) -> str:
        return f"{self.topic_prefix}.blobs"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Settings from `env` (default os.environ); raises SettingsError naming the variable."""
        env = os.environ if env is None else env
        d = cls()
        return cls(
            kafka_bootstrap=_read(env, "AMBER_KAFKA_BOOTSTRAP", _nonempty, d.kafka_bootstrap),
            kafka_client=_read(env, "AMBER_KAFKA_CLIENT", _kafka_client, d.kafka_client),
            database_url=_read(env, "AMBER_DATABASE_URL", _pg_url, d.database_url),
            topic_prefix=_read(env, "AMBER_TOPIC_PREFIX", _nonempty, d.topic_prefix),
            partitions=_read(env, "AMBER_PARTITIONS", _positive_int, d.partitions),
            kafka_compression=_read(env, "AMBER_KAFKA_COMPRESSION", _compression,
                                    d.kafka_compression),
            snapshot_every=_read(env, "AMBER_SNAPSHOT_EVERY", _positive_int, d.snapshot_every),
            blob_min_bytes=_read(env, "AMBER_BLOB_MIN_BYTES", _blob_min_bytes, d.blob_min_bytes),
            ack_timeout_s=_read(env, "AMBER_ACK_TIMEOUT_S", _positive_float, d.ack_timeout_s),
            catchup_timeout_s=_read(env, "AMBER_CATCHUP_TIMEOUT_S", _positive_float,
                                    d.catchup_timeout_s),
            projector_gather_ms=_read(env, "AMBER_PROJECTOR_GATHER_MS", _non_negative_int,
                                      d.projector_gather_ms),
            worker_batch_s=_read(env, "AMBER_WORKER_BATCH_S", _positive_float, d.worker_batch_s),
            api_tokens=env.get("AMBER_API_TOKENS", d.api_tokens),
            outbox_dir=_read(env, "AMBER_OUTBOX_DIR", _nonempty, d.outbox_dir),
            llm_url=env.get("AMBER_LLM_URL", d.llm_url),
        )


def _read(env: Mapping[str, str], name: str, parse: Callable[[str], T], default: T) -> T:
    raw = env.get(name)
    if raw is None:
        return default
    try:
        return parse(raw)
    except ValueError as e:
        raise SettingsError(name, f"{e} (got {raw!r})") from None


def _nonempty(raw: str) -> str:
    if not raw.strip():
        raise ValueError("must not be empty")
    return raw.strip()


def _one_of(choices: tuple[str, ...]) -> Callable[[str], Any]:
    def parse(raw: str) -> str:
        value = raw.strip().lower()
        if value not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}")
        return value
    return parse


_kafka_client = _one_of(KAFKA_CLIENTS)
_compression = _one_of(COMPRESSIONS)


def checked_compression(value: str) -> Compression:
    """`value` if it names a codec (for adapters built without Settings)."""
    name = "AMBER_KAFKA_COMPRESSION"
    parsed: Compression = _read({name: value}, name, _compression, "none")
    return parsed


def _pg_url(raw: str) -> str:
    if not raw.startswith(("postgresql://", "postgres://")):
        raise ValueError("must be a postgresql:// URL")
    return raw


def _positive_int(raw: str) -> int:
    value = int(raw)
    if value < 1:
        raise ValueError("must be an integer >= 1")
    return value


def _non_negative_int(raw: str) -> int:
    value = int(raw)
    if value < 0:
        raise ValueError("must be an integer >= 0")
    return value


def _positive_float(raw: str) -> float:
    value = float(raw)
    if not (0 < value < math.inf):  # also refuses nan, which compares false to everything
        raise ValueError("must be a finite number > 0")
    return value


def _blob_min_bytes(raw: str) -> int:
    """0 (no blobs), or a size a pointer (~200 bytes) is well worth replacing."""
    from engine.blobs import MIN_FLOOR

    value = int(raw)
    if value != 0 and value < MIN_FLOOR:
        raise ValueError(f"must be 0 (keep texts inline) or at least {MIN_FLOOR}")
    return value
