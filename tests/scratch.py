"""Scratch topics and databases the tests create on the shared stack, and their cleanup.

Each name carries its owner: a tag of this host and the pid of the pytest
process. A run that dies before its teardown (SIGKILL, a second Ctrl-C, a
crashed interpreter) leaves its topics and databases behind for good, and a
broker with ~1,500 stale partitions measured 15-25% slower. At the start of
a session, names owned by this host whose process is gone are dropped; a
run still alive, or one on another host sharing the stack, is never touched.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

HOST = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:4]
_OWNED = re.compile(r"^amber[-_]test[-_](?P<host>[0-9a-f]{4})[-_](?P<pid>\d+)[-_]")


def topic_prefix(pid: int | None = None) -> str:
    return f"amber-test-{HOST}-{pid or os.getpid()}-{uuid.uuid4().hex[:8]}"


def database_name(pid: int | None = None) -> str:
    return f"amber_test_{HOST}_{pid or os.getpid()}_{uuid.uuid4().hex[:8]}"


def abandoned(name: str) -> bool:
    """Whether `name` belongs to a test run on this host that is no longer running."""
    owner = _OWNED.match(name)
    if owner is None or owner["host"] != HOST:
        return False
    return not _alive(int(owner["pid"]))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


@dataclass
class Swept:
    topics: list[str] = field(default_factory=list)
    databases: list[str] = field(default_factory=list)


def sweep(bootstrap: str, database_url: str) -> Swept:
    """Delete the abandoned topics and drop the abandoned databases."""
    return Swept(topics=_sweep_topics(bootstrap), databases=_sweep_databases(database_url))


def _sweep_topics(bootstrap: str) -> list[str]:
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15000)
    try:
        dead = sorted(t for t in admin.list_topics() if abandoned(t))
        if dead:
            admin.delete_topics(dead)
        return dead
    finally:
        admin.close()


def _sweep_databases(url: str) -> list[str]:
    import psycopg
    from psycopg import sql

    with psycopg.connect(url, autocommit=True) as admin:
        names = [r[0] for r in admin.execute("SELECT datname FROM pg_database").fetchall()]
        dead = sorted(n for n in names if abandoned(n))
        for name in dead:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(name)))
        return dead


@contextlib.contextmanager
def fresh_database(admin_url: str) -> Iterator[str]:
    """A new database next to `admin_url`'s, owned by this run; dropped on exit."""
    import psycopg
    from psycopg import sql

    name = database_name()
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield urlunsplit(urlsplit(admin_url)._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(name)))
