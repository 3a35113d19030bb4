"""Shared fixtures: each test gets its own topic and its own database on the real stack."""

from __future__ import annotations

import contextlib
import logging
import os
import uuid
from collections.abc import Iterator

import pytest

from tests import scratch
from tests.stack import IN_CI, Endpoints, require_confluent, resolve


@pytest.fixture(scope="session")
def stack() -> Iterator[Endpoints]:
    """The real Kafka + PostgreSQL; fails in CI, skips elsewhere, if none can be had.

    The run holds its lease (tests/scratch.py) while it lasts, so that no other
    run's sweep takes its topics and databases for a dead run's.
    """
    try:
        endpoints = resolve()
        _check_kafka(endpoints.kafka_bootstrap)
        _check_postgres(endpoints.database_url)
    except Exception as e:  # any failure to reach the stack is reported below, never hidden
        if IN_CI:
            pytest.fail(f"real stack unavailable in CI: {e}", pytrace=False)
        pytest.skip(f"real stack unavailable: {e}")
    lease = scratch.Lease(endpoints.database_url)
    _sweep(endpoints)
    yield endpoints
    lease.close()


def _sweep(endpoints: Endpoints) -> None:
    """Drop what dead test runs left behind (tests/scratch.py)."""
    try:
        swept = scratch.sweep(endpoints.kafka_bootstrap, endpoints.database_url)
    except Exception as e:  # housekeeping: the tests themselves do not depend on it
        logging.getLogger(__name__).warning("sweeping leftovers failed: %s", e)
        return
    if swept.topics or swept.databases:
        logging.getLogger(__name__).warning("dropped leftovers of dead test runs: %s", swept)


def _check_kafka(bootstrap: str) -> None:
    from kafka import KafkaAdminClient

    KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15000).close()


def _check_postgres(url: str) -> None:
    import psycopg

    with psycopg.connect(url, connect_timeout=15) as conn:
        conn.execute("SELECT 1")


@pytest.fixture
def topic_prefix(request: pytest.FixtureRequest) -> Iterator[str]:
    """A prefix no other test uses, so each test has its own topics (deleted afterwards)."""
    prefix = scratch.topic_prefix()
    yield prefix
    if "stack" in request.fixturenames:
        _delete_topics(request.getfixturevalue("stack").kafka_bootstrap, prefix)


def _delete_topics(bootstrap: str, prefix: str) -> None:
    from kafka.errors import KafkaError

    with contextlib.suppress(KafkaError):  # best effort: a leftover is swept by the next run
        scratch.delete_topics_with_prefix(bootstrap, prefix)


@pytest.fixture
def kafka_log(stack: Endpoints, topic_prefix: str) -> Iterator[object]:
    """A KafkaEventLog on a fresh topic with 12 partitions."""
    from engine.eventlog_kafka import KafkaEventLog

    log = KafkaEventLog(bootstrap=stack.kafka_bootstrap, topic=f"{topic_prefix}.events",
                        partitions=12)
    log.ensure_topic()
    yield log
    log.close()


@pytest.fixture
def confluent_log(stack: Endpoints, topic_prefix: str) -> Iterator[object]:
    """A ConfluentEventLog on a fresh topic with 12 partitions (the `fast` extra).

    The `test` extra installs confluent-kafka, so CI always runs it; elsewhere a
    missing package skips, saying how to install it.
    """
    require_confluent()
    from engine.eventlog_confluent import ConfluentEventLog

    log = ConfluentEventLog(bootstrap=stack.kafka_bootstrap, topic=f"{topic_prefix}.events",
                            partitions=12, client_id=f"amber-test-{uuid.uuid4().hex[:6]}")
    log.ensure_topic()
    yield log
    log.close()


@pytest.fixture
def pg_url(stack: Endpoints) -> Iterator[str]:
    """The URL of a fresh, empty database, dropped after the test."""
    with scratch.fresh_database(stack.database_url) as url:
        yield url


@pytest.fixture
def settings_env(stack: Endpoints, topic_prefix: str, pg_url: str) -> dict[str, str]:
    """AMBER_* variables pointing a subprocess at this test's topic and database."""
    return {**os.environ, "AMBER_KAFKA_BOOTSTRAP": stack.kafka_bootstrap,
            "AMBER_DATABASE_URL": pg_url, "AMBER_TOPIC_PREFIX": topic_prefix}
