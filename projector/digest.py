"""A digest of the projection's tables, to prove two projections are identical row for row.

Every column takes part except the one wall-clock column (when the projector
last advanced on a partition: liveness, not state), rows in primary-key order.
Used by the crash and rebuild tests, and by operators to compare a rebuilt
database with a live one.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

# table -> primary key, the order rows are digested in
DIGESTED_TABLES: dict[str, tuple[str, ...]] = {
    "threads": ("thread_id",),
    "checkpoints": ("thread_id", "seq"),
    "rejected_events": ("kafka_partition", "kafka_offset"),
    "dead_letters": ("topic", "kafka_partition", "kafka_offset"),
    "projector_positions": ("group_id", "topic", "kafka_partition"),
}
WALL_CLOCK_COLUMNS = {"projector_positions": ["committed_at"]}


def table_digests(conn: psycopg.Connection[Any]) -> dict[str, str]:
    """`"<rows>:<md5 of every row's jsonb text, wall clock left out>"` per projection table."""
    out = {}
    for table, key in DIGESTED_TABLES.items():
        query = sql.SQL("SELECT count(*), md5(coalesce(string_agg((to_jsonb(t) - %s::text[])::text,"
                        " E'\\n' ORDER BY {key}), '')) FROM {table} t").format(
            key=sql.SQL(", ").join(sql.Identifier(k) for k in key),
            table=sql.Identifier(table))
        row = conn.execute(query, (WALL_CLOCK_COLUMNS.get(table, []),)).fetchone()
        assert row is not None
        out[table] = f"{row[0]}:{row[1]}"
    return out


def database_digests(database_url: str) -> dict[str, str]:
    with psycopg.connect(database_url) as conn:
        return table_digests(conn)
