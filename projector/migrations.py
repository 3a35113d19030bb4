"""SQL migrations: an append-only list whose index + 1 is the schema version.

Never edit or reorder a shipped entry; add a new file at the end. `migrate`
applies the missing ones in one transaction under an advisory lock, so any
number of projectors and `amber db migrate` may start at once.
"""

from __future__ import annotations

import logging
from importlib import resources
from typing import Any

import psycopg

from projector.errors import MigrationError

MIGRATIONS: tuple[str, ...] = (
    "0001_projection.sql",
    "0002_position_time.sql",
    "0003_lz4_toast.sql",
)
# Advisory-lock keys (class, id) of the projector; the class spells "AM".
LOCK_CLASS_MIGRATIONS = 0x414D0001
LOCK_CLASS_GROUPS = 0x414D0002

log = logging.getLogger("amber.projector")


def migration_sql(index: int) -> str:
    """The text of migration `index` (0-based), shipped inside the package."""
    return resources.files("projector").joinpath("sql", MIGRATIONS[index]).read_text("utf-8")


def migrate(conn: psycopg.Connection[Any]) -> list[int]:
    """Bring the schema to the latest version; returns the versions applied now.

    Raises MigrationError if a migration fails (nothing of it stays) or if the
    database holds a version this code does not know (it is newer than us).
    """
    conn.add_notice_handler(_log_warning)  # a migration's fallback is said by a NOTICE
    try:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s, 0)", (LOCK_CLASS_MIGRATIONS,))
            conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations ("
                         " version integer PRIMARY KEY, name text NOT NULL,"
                         " applied_at timestamptz NOT NULL DEFAULT now())")
            return _apply_missing(conn)
    except psycopg.Error as e:
        raise MigrationError(f"migration failed: {e}") from e
    finally:  # the connection may live on (the projector's): its later notices are not ours
        conn.remove_notice_handler(_log_warning)


def _log_warning(notice: psycopg.errors.Diagnostic) -> None:
    if notice.severity_nonlocalized in ("NOTICE", "WARNING"):
        log.warning("migration: %s", notice.message_primary)


def _apply_missing(conn: psycopg.Connection[Any]) -> list[int]:
    rows = conn.execute("SELECT version FROM schema_migrations").fetchall()
    done = {int(r[0]) for r in rows}
    unknown = sorted(v for v in done if v > len(MIGRATIONS))
    if unknown:
        raise MigrationError(f"database has schema version(s) {unknown} that this code does not "
                             f"know (latest here is {len(MIGRATIONS)}): upgrade Amber")
    applied = []
    for index, name in enumerate(MIGRATIONS):
        version = index + 1
        if version in done:
            continue
        conn.execute(migration_sql(index).encode("utf-8"))
        conn.execute("INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                     (version, name))
        log.info("applied migration", extra={"version": version, "migration": name})
        applied.append(version)
    return applied
