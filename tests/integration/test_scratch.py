"""The sweep of topics and databases that dead test runs left on the shared stack."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import psycopg
import pytest
from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from psycopg import sql

from tests import scratch
from tests.stack import Endpoints
from tests.waiting import wait_until

pytestmark = pytest.mark.integration


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()  # reaped: nothing answers to this pid any more
    return proc.pid


def _foreign(name: str) -> str:
    """The same name as another host sharing the stack would own it."""
    other = "0000" if scratch.HOST != "0000" else "ffff"
    return name.replace(scratch.HOST, other, 1)


@pytest.fixture
def admin(stack: Endpoints) -> Iterator[KafkaAdminClient]:
    client = KafkaAdminClient(bootstrap_servers=stack.kafka_bootstrap)
    yield client
    client.close()


def _topics(admin: KafkaAdminClient) -> set[str]:
    return set(admin.list_topics())


def _databases(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        return {r[0] for r in conn.execute("SELECT datname FROM pg_database").fetchall()}


def _create(admin: KafkaAdminClient, url: str, topics: list[str], dbs: list[str]) -> None:
    admin.create_topics([NewTopic(t, 1, 1) for t in topics])
    with psycopg.connect(url, autocommit=True) as conn:
        for db in dbs:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db)))


def _drop(admin: KafkaAdminClient, url: str, topics: list[str], dbs: list[str]) -> None:
    present = [t for t in topics if t in _topics(admin)]
    if present:
        admin.delete_topics(present)
    with psycopg.connect(url, autocommit=True) as conn:
        for db in dbs:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(db)))


def test_only_dead_runs_of_this_host_are_swept(stack: Endpoints,
                                               admin: KafkaAdminClient) -> None:
    dead = _dead_pid()
    dead_topic, dead_db = scratch.topic_prefix(dead) + ".events", scratch.database_name(dead)
    live_topic, live_db = scratch.topic_prefix() + ".events", scratch.database_name()
    foreign_topic, foreign_db = _foreign(dead_topic), _foreign(dead_db)
    kept_topics, kept_dbs = [live_topic, foreign_topic], [live_db, foreign_db]
    _create(admin, stack.database_url, [dead_topic, *kept_topics], [dead_db, *kept_dbs])
    try:
        swept = scratch.sweep(stack.kafka_bootstrap, stack.database_url)

        assert dead_topic in swept.topics and dead_db in swept.databases
        assert not set(kept_topics) & set(swept.topics)
        assert not set(kept_dbs) & set(swept.databases)
        wait_until(lambda: dead_topic not in _topics(admin), 30, "the dead run's topic to go")
        assert dead_db not in _databases(stack.database_url)
        assert set(kept_topics) <= _topics(admin)
        assert set(kept_dbs) <= _databases(stack.database_url)
    finally:
        _drop(admin, stack.database_url, [dead_topic, *kept_topics], [dead_db, *kept_dbs])

