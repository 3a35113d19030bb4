"""Amber's production checkpointer: the Kafka event log + the PostgreSQL projection.

This is the composition root for library users: `AmberCheckpointer.from_env()`
or `.from_urls(kafka=..., database=...)` returns an engine Checkpointer, and
the `amber.checkpointer` entry point makes it the default.
"""

from __future__ import annotations

from dataclasses import replace

from engine.checkpointer import Checkpointer
from engine.settings import Settings


class AmberCheckpointer:
    """Factories only: the object they return is a plain engine Checkpointer."""

    @staticmethod
    def from_settings(settings: Settings, *, ensure_topic: bool = True,
                      role: str = "runner") -> Checkpointer:
        """`role` names the PostgreSQL connections (application_name amber-<role>)."""
        from engine.eventlog_kafka import KafkaEventLog
        from projector.reader import PostgresProjectionReader

        log = KafkaEventLog(bootstrap=settings.kafka_bootstrap, topic=settings.events_topic,
                            partitions=settings.partitions, ack_timeout_s=settings.ack_timeout_s)
        if ensure_topic:
            log.ensure_topic()
        reader = PostgresProjectionReader(_named(settings.database_url, f"amber-{role}"),
                                          topic=settings.events_topic)
        return Checkpointer(log=log, projection=reader,
                            catchup_timeout_s=settings.catchup_timeout_s,
                            snapshot_every=settings.snapshot_every, on_close=reader.close)

    @staticmethod
    def from_env() -> Checkpointer:
        return AmberCheckpointer.from_settings(Settings.from_env())

    @staticmethod
    def from_urls(*, kafka: str, database: str, topic_prefix: str = "amber") -> Checkpointer:
        settings = replace(Settings.from_env(), kafka_bootstrap=kafka, database_url=database,
                           topic_prefix=topic_prefix)
        return AmberCheckpointer.from_settings(settings)


def default_checkpointer() -> Checkpointer:
    """Entry point `amber.checkpointer:default`: settings from AMBER_* variables."""
    return AmberCheckpointer.from_env()


def _named(url: str, application_name: str) -> str:
    """The URL with application_name set, so pg_stat_activity shows who holds what."""
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}application_name={application_name}"
