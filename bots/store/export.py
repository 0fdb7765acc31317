"""``kb export-state``: the SQLite state store copied into PostgreSQL, when a shop moves from one
process to several workers. Both schemas name their tables and columns alike, so every table
the PostgreSQL schema has is copied row by row, ids included."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from bots.store.postgres import PostgresStateStore, storable


class StateNotEmpty(Exception):
    """The PostgreSQL database already holds state: copying into it would mix two shops' data."""


def export_sqlite(source: Path, url: str) -> dict[str, int]:
    """Copy every table of the SQLite file ``source`` into the (migrated, empty) PostgreSQL
    database at ``url``, in one transaction: rows copied per table."""
    target = PostgresStateStore(url, pool_size=1)  # migrates: the tables exist
    sqlite = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    try:
        names = {row[0] for row in sqlite.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        with target._transaction() as db:
            tables = [
                row["tablename"]
                for row in db.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename")
                if row["tablename"] != "schema_version" and row["tablename"] in names
            ]
            # tickets before ticket_messages (a foreign key)
            tables.sort(key=lambda table: table == "ticket_messages")
            for table in tables:
                if db.execute(f"SELECT 1 FROM {table} LIMIT 1").fetchone():
                    raise StateNotEmpty(f"table {table} in PostgreSQL is not empty")
            copied = {}
            for table in tables:
                described = db.execute(
                    "SELECT column_name, is_identity FROM information_schema.columns WHERE table_name = %s", (table,)
                ).fetchall()
                wanted = {row["column_name"] for row in described}
                numbered = any(row["column_name"] == "id" and row["is_identity"] == "YES" for row in described)
                cursor = sqlite.execute(f"SELECT * FROM {table}")
                names_here = [c[0] for c in cursor.description]
                columns = [name for name in names_here if name in wanted]
                rows = [tuple(storable(row[names_here.index(c)]) for c in columns) for row in cursor]
                if rows:
                    marks = ", ".join(["%s"] * len(columns))
                    with db.cursor() as insert:
                        insert.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows)
                if numbered:  # the next id PostgreSQL gives comes after the copied ones
                    next_id = f"(SELECT COALESCE(MAX(id), 0) + 1 FROM {table})"
                    db.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), {next_id}, false)")
                copied[table] = len(rows)
        return copied
    finally:
        sqlite.close()
        target.close()
