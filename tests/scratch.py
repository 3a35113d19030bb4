"""Scratch topics and databases the tests and benches create on the shared stack, and their cleanup.

Each name carries the id of the pytest or bench run that made it, and the run holds a
PostgreSQL advisory lock on that id for as long as it lives: a lease that
the server releases whenever the run's connection goes, SIGKILL included.
A run that dies before its teardown (SIGKILL, a second Ctrl-C, a crashed
interpreter) leaves its topics and databases behind for good, and a broker
with ~1,500 stale partitions measured 15-25% slower. At the start of a
session, names whose run's lease nobody holds are dropped. A lease, unlike
a pid, is seen alike from every host, container and pid namespace that
shares the stack, so a live run is never touched.
"""

from __future__ import annotations

import contextlib
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

RUN = secrets.token_hex(4)  # this process's run id (a pytest session, or a bench run)
_LEASES = 0x414D0003  # advisory-lock class of test runs ("AM" + 3; the projector uses 1 and 2)
# The kinds of scratch name, tests' and benches'; nothing else is ever swept.
KINDS = ("amber_test", "amber_bench", "amber_bench_workers", "amber_bench_projector",
         "lg_bench", "lg_bench_workers", "dbos_bench")
_OWNED = re.compile(rf"^(?:{'|'.join(k.replace('_', '[-_]') for k in KINDS)})"
                    r"[-_]r(?P<run>[0-9a-f]{8})[-_]")


def scratch_name(kind: str, sep: str = "_", run: str = RUN) -> str:
    """A name of `kind` owned by `run`: `amber_bench` → amber_bench_r<run>_<random>."""
    assert kind in KINDS, kind
    return sep.join([*kind.split("_"), f"r{run}", secrets.token_hex(4)])


def topic_prefix(run: str = RUN) -> str:
    return scratch_name("amber_test", "-", run)


def database_name(run: str = RUN) -> str:
    return scratch_name("amber_test", "_", run)


def owner(name: str) -> str | None:
    """The run id a scratch name carries; None for any other name."""
    found = _OWNED.match(name)
    return None if found is None else found["run"]


def _lease_key(run: str) -> tuple[int, int]:
    return _LEASES, int.from_bytes(bytes.fromhex(run), "big", signed=True)


class Lease:
    """This run's advisory lock, held on a connection of its own until close()."""

    def __init__(self, database_url: str, run: str = RUN) -> None:
        import psycopg

        self._conn = psycopg.connect(database_url, autocommit=True)
        self._conn.execute("SELECT pg_advisory_lock(%s, %s)", _lease_key(run))

    def close(self) -> None:
        self._conn.close()


def _alive(conn: Any, run: str) -> bool:
    """Whether some session holds `run`'s lease, in whichever database of the server.

    An advisory lock is per database: a bench leased in the database of
    AMBER_BENCH_ADMIN_URL is invisible to pg_try_advisory_lock from the tests'
    database, but pg_locks lists the locks of every database.
    """
    high, low = _lease_key(run)
    found = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted "
        "AND classid = %s::bigint::oid AND objid = %s::bigint::oid AND objsubid = 2)",
        (high, low & 0xFFFFFFFF)).fetchone()
    return bool(found[0])


@dataclass
class Swept:
    topics: list[str] = field(default_factory=list)
    databases: list[str] = field(default_factory=list)


def sweep(bootstrap: str, database_url: str) -> Swept:
    """Delete the topics and drop the databases of runs whose lease nobody holds."""
    import psycopg

    dbs, topics = list_databases(database_url), list_topics(bootstrap)
    with psycopg.connect(database_url, autocommit=True) as conn:
        runs = {owner(n) for n in (*dbs, *topics)} - {None, RUN}
        dead = {run for run in runs if run is not None and not _alive(conn, run)}
    swept = Swept(topics=sorted(t for t in topics if owner(t) in dead),
                  databases=sorted(d for d in dbs if owner(d) in dead))
    delete_topics(bootstrap, swept.topics)
    for name in swept.databases:
        drop_database(database_url, name)
    return swept


# --- plain create / drop ---------------------------------------------------------------

@contextlib.contextmanager
def _admin(bootstrap: str) -> Iterator[Any]:
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15000)
    try:
        yield admin
    finally:
        admin.close()


def list_topics(bootstrap: str) -> list[str]:
    with _admin(bootstrap) as admin:
        return list(admin.list_topics())


def delete_topics(bootstrap: str, names: list[str]) -> None:
    if names:
        with _admin(bootstrap) as admin:
            admin.delete_topics(names)


def delete_topics_with_prefix(bootstrap: str, prefix: str) -> None:
    with _admin(bootstrap) as admin:
        mine = [t for t in admin.list_topics() if t.startswith(prefix)]
        if mine:
            admin.delete_topics(mine)


def topic_bytes(bootstrap: str, topic: str) -> int:
    """What the topic's partitions take on the brokers' disks."""
    with _admin(bootstrap) as admin:
        dirs = admin.describe_log_dirs()
    return sum(p["partition_size"] for broker in dirs for d in broker["log_dirs"]
               for t in d["topics"] if t["name"] == topic for p in t["partitions"])


def list_databases(url: str) -> list[str]:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        return [r[0] for r in conn.execute("SELECT datname FROM pg_database").fetchall()]


def create_database(admin_url: str, name: str) -> str:
    """CREATE DATABASE `name` next to `admin_url`'s; its URL."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return urlunsplit(urlsplit(admin_url)._replace(path=f"/{name}"))


def drop_database(admin_url: str, name: str, *, patience_s: float = 60.0) -> None:
    """DROP DATABASE … WITH (FORCE), tried again while an autovacuum worker is inside.

    Autovacuum runs as the superuser, whom FORCE cannot end for a lesser role; a
    freshly migrated database often has one inside for a moment.
    """
    import time

    import psycopg
    from psycopg import sql

    deadline = time.monotonic() + patience_s
    while True:
        try:
            with psycopg.connect(admin_url, autocommit=True) as admin:
                admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    sql.Identifier(name)))
            return
        except psycopg.errors.InsufficientPrivilege:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@contextlib.contextmanager
def fresh_database(admin_url: str) -> Iterator[str]:
    """A new database owned by this run, dropped on exit."""
    name = database_name()
    url = create_database(admin_url, name)
    try:
        yield url
    finally:
        drop_database(admin_url, name)
