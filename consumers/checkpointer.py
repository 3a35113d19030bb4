"""Amber's production checkpointer: the Kafka event log + the PostgreSQL projection.

This is the composition root for library users: `AmberCheckpointer.from_env()`
or `.from_urls(kafka=..., database=...)` returns an engine Checkpointer, and
the `amber.checkpointer` entry point makes it the default.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from engine.blobstore import Blobs
from engine.checkpointer import Checkpointer
from engine.errors import SettingsError
from engine.settings import Settings

if TYPE_CHECKING:  # the adapters are imported lazily: only the chosen client must be installed
    from engine.eventlog_confluent import ConfluentEventLog
    from engine.eventlog_kafka import KafkaEventLog


class AmberCheckpointer:
    """Factories only: the object they return is a plain engine Checkpointer."""

    @staticmethod
    def from_settings(settings: Settings, *, ensure_topic: bool = True,
                      role: str = "runner", pool_size: int = 4,
                      writes: bool = True) -> Checkpointer:
        """`role` names the PostgreSQL connections (application_name amber-<role>);
        `writes=False` for read-only users (nothing is readied for appending)."""
        from projector.reader import PostgresProjectionReader

        log = event_log(settings)
        if ensure_topic:
            log.ensure_topic()
        # while PostgreSQL connects (the pool does that in the background too)
        log.connect_soon(writes=writes)
        reader = PostgresProjectionReader(_named(settings.database_url, f"amber-{role}"),
                                          topic=settings.events_topic, pool_size=pool_size)
        return Checkpointer(log=log, projection=reader,
                            catchup_timeout_s=settings.catchup_timeout_s,
                            snapshot_every=settings.snapshot_every, blobs=blobs(settings),
                            on_close=reader.close)

    @staticmethod
    def from_env() -> Checkpointer:
        return AmberCheckpointer.from_settings(Settings.from_env())

    @staticmethod
    def from_urls(*, kafka: str, database: str, topic_prefix: str = "amber") -> Checkpointer:
        settings = replace(Settings.from_env(), kafka_bootstrap=kafka, database_url=database,
                           topic_prefix=topic_prefix)
        return AmberCheckpointer.from_settings(settings)


def event_log(settings: Settings, *,
              client_id: str = "amber") -> KafkaEventLog | ConfluentEventLog:
    """The Kafka EventLog adapter named by `settings.kafka_client` (imported only if chosen)."""
    if settings.kafka_client == "confluent":
        try:
            from engine.eventlog_confluent import ConfluentEventLog
        except ImportError as e:
            raise confluent_missing(e) from None
        return ConfluentEventLog(bootstrap=settings.kafka_bootstrap,
                                 topic=settings.events_topic, partitions=settings.partitions,
                                 ack_timeout_s=settings.ack_timeout_s, client_id=client_id,
                                 compression=settings.kafka_compression)
    if settings.kafka_client == "kafka-python":
        from engine.eventlog_kafka import KafkaEventLog

        return KafkaEventLog(bootstrap=settings.kafka_bootstrap, topic=settings.events_topic,
                             partitions=settings.partitions, ack_timeout_s=settings.ack_timeout_s,
                             client_id=client_id, compression=settings.kafka_compression)
    raise SettingsError("AMBER_KAFKA_CLIENT", f"unknown Kafka client {settings.kafka_client!r}")


def blobs(settings: Settings, *, client_id: str = "amber") -> Blobs:
    """Large texts to the blob topic (kafka-python whichever client appends events); with
    AMBER_BLOB_MIN_BYTES=0 none are written, and those written before are still read."""
    from engine.blobstore_kafka import KafkaBlobStore

    store = KafkaBlobStore(bootstrap=settings.kafka_bootstrap, topic=settings.blobs_topic,
                           partitions=settings.partitions, timeout_s=settings.ack_timeout_s,
                           client_id=client_id)
    return Blobs(store, min_bytes=settings.blob_min_bytes)


def confluent_missing(e: ImportError) -> SettingsError:
    """AMBER_KAFKA_CLIENT=confluent without the package: say how to install it."""
    return SettingsError("AMBER_KAFKA_CLIENT", "confluent needs the confluent-kafka "
                         f"package: pip install 'amber[fast]' ({e})")


def default_checkpointer() -> Checkpointer:
    """Entry point `amber.checkpointer:default`: settings from AMBER_* variables."""
    return AmberCheckpointer.from_env()


def _named(url: str, application_name: str) -> str:
    """The URL with application_name set, so pg_stat_activity shows who holds what."""
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}application_name={application_name}"
