"""Where the ledger's rows live: SQLite or PostgreSQL through SQLAlchemy Core.

One row per (org, object, record key) holds the record's hash and a JSON map field → hash.
This module knows the two dialects' differences (SQLite: WAL, busy timeout, ``BEGIN
IMMEDIATE``, ``json_patch``; PostgreSQL: ``ON CONFLICT`` with ``jsonb ||``) and nothing of
what the hashes mean. Writers never read-modify-write: a merge happens inside the upsert, so
two processes landing different fields of one record both keep theirs.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

import msgspec
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, Engine, make_url

SCHEMA_VERSION = "1"
SQLITE_BUSY_TIMEOUT_S = 30.0
POSTGRES_CONNECT_TIMEOUT_S = 10
MAX_KEYS_PER_QUERY = 1000
WRITE_ATTEMPTS = 6
_RETRY_BASE_DELAY_S = 0.05
# PostgreSQL: deadlock detected, serialization failure, lock not available
_RETRY_SQLSTATES = frozenset({"40P01", "40001", "55P03"})
_SQLITE_BUSY = ("database is locked", "database is busy", "database table is locked")
_SQLITE_CORRUPT_NAMES = frozenset({"SQLITE_CORRUPT", "SQLITE_NOTADB"})
_SQLITE_CORRUPT_TEXT = ("malformed", "not a database")
_PASSWORD_IN_URL = re.compile(r"(://[^:/@]*:)[^@]*@")

metadata = sa.MetaData()
entries = sa.Table(
    "sync_ledger",
    metadata,
    sa.Column("record_key", sa.Text, nullable=False),
    sa.Column("org_id", sa.String(18), nullable=False),
    sa.Column("object", sa.String(80), nullable=False),
    sa.Column("record_hash", sa.BigInteger, nullable=False),
    sa.Column("fields", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False),
    # The record key leads: a chunk's lookup is then always an index search on its keys, even
    # before PostgreSQL has statistics (with org and object first, it scanned the whole org).
    sa.PrimaryKeyConstraint("record_key", "org_id", "object"),
)
ledger_meta = sa.Table(
    "sync_ledger_meta",
    metadata,
    sa.Column("name", sa.String(40), primary_key=True),
    sa.Column("value", sa.String(200), nullable=False),
)

T = TypeVar("T")


class StoreCorrupt(Exception):
    """The SQLite file is damaged (not a database, or a malformed page)."""


def mask_url(url: str) -> str:
    """The URL as it may be shown: any password replaced by ``***``."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (sa.exc.ArgumentError, ValueError):
        return _PASSWORD_IN_URL.sub(r"\1***@", url)


def parse_url(url: str) -> URL:
    """The URL, with bare ``postgresql://`` taken as psycopg, the driver this project ships."""
    parsed = make_url(url)
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def is_corruption(exc: BaseException) -> bool:
    orig = getattr(exc, "orig", exc)
    if getattr(orig, "sqlite_errorname", None) in _SQLITE_CORRUPT_NAMES:
        return True
    return type(orig).__name__ == "DatabaseError" and any(
        text in str(orig) for text in _SQLITE_CORRUPT_TEXT
    )


def _is_transient(exc: sa.exc.DBAPIError) -> bool:
    """Worth another try: a lock conflict, or a dropped connection (the pool replaces it;
    a write replayed after a lost acknowledgement writes the same hashes again)."""
    if exc.connection_invalidated:
        return True
    orig = exc.orig
    if getattr(orig, "sqlstate", None) in _RETRY_SQLSTATES:
        return True
    return any(text in str(orig) for text in _SQLITE_BUSY)


def _json_text(value: Any) -> str:
    """JSON for the ``fields`` column (module-level: psycopg caches loaders per function)."""
    return msgspec.json.encode(value).decode()


class Store:
    """One engine on one ledger database; every write is one short transaction, retried."""

    def __init__(self, url: URL) -> None:
        self.dialect = url.get_backend_name()
        self.engine: Engine = self._create_engine(url)
        self._lookup = (
            sa.select(entries.c.record_key, entries.c.record_hash,
                      sa.cast(entries.c.fields, sa.Text))
            .where(entries.c.org_id == sa.bindparam("org_id"))
            .where(entries.c.object == sa.bindparam("object_type"))
            .where(entries.c.record_key.in_(sa.bindparam("keys", expanding=True)))
        )
        self._merge, self._replace = self._upserts()

    def _create_engine(self, url: URL) -> Engine:
        options: dict[str, Any] = {
            "json_serializer": _json_text,
            "json_deserializer": msgspec.json.decode,
        }
        if self.dialect != "sqlite":  # an unreachable server fails start-up in seconds
            return sa.create_engine(
                url, connect_args={"connect_timeout": POSTGRES_CONNECT_TIMEOUT_S}, **options
            )
        engine = sa.create_engine(
            url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S}, **options
        )

        @sa.event.listens_for(engine, "connect")
        def _configure(dbapi_connection: Any, _record: Any) -> None:
            # Transactions are begun by hand (BEGIN IMMEDIATE for writes), not by the driver.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        return engine

    def _upserts(self) -> tuple[sa.Insert, sa.Insert]:
        keys = [entries.c.record_key, entries.c.org_id, entries.c.object]
        if self.dialect == "sqlite":
            stmt: Any = sqlite.insert(entries)
            merged: Any = sa.func.json_patch(entries.c.fields, stmt.excluded.fields)
        else:
            stmt = postgresql.insert(entries)
            merged = entries.c.fields.op("||")(stmt.excluded.fields)
        merge = stmt.on_conflict_do_update(
            index_elements=keys,
            set_={"record_hash": stmt.excluded.record_hash, "fields": merged},
        )
        replace = stmt.on_conflict_do_update(
            index_elements=keys,
            set_={"record_hash": stmt.excluded.record_hash, "fields": stmt.excluded.fields},
        )
        return merge, replace

    def create_schema(self) -> bool:
        """Create the tables if missing; True when they were missing (a fresh ledger)."""

        def create(conn: sa.Connection) -> bool:
            if self.dialect == "postgresql":  # two workers starting at once: one creates
                conn.execute(sa.select(sa.func.pg_advisory_xact_lock(0x5F1ED6E5)))
            fresh = not sa.inspect(conn).has_table(entries.name)
            metadata.create_all(conn, checkfirst=True)
            version = conn.execute(
                sa.select(ledger_meta.c.value).where(ledger_meta.c.name == "schema")
            ).scalar()
            if version is None:
                conn.execute(ledger_meta.insert().values(name="schema", value=SCHEMA_VERSION))
            elif version != SCHEMA_VERSION:
                raise ValueError(f"ledger schema version {version} is not supported "
                                 f"(this version reads {SCHEMA_VERSION})")
            return fresh

        return self.write(create)

    def has_schema(self) -> bool:
        """Whether the tables exist, reading only (a dry run creates nothing)."""

        def read() -> bool:
            with self.engine.connect() as conn:
                if not sa.inspect(conn).has_table(entries.name):
                    return False
                version = conn.execute(
                    sa.select(ledger_meta.c.value).where(ledger_meta.c.name == "schema")
                ).scalar()
            if version not in (None, SCHEMA_VERSION):
                raise ValueError(f"ledger schema version {version} is not supported "
                                 f"(this version reads {SCHEMA_VERSION})")
            return True

        return self._retrying(read)

    def lookup(
        self, org_id: str, object_type: str, keys: Sequence[str]
    ) -> list[tuple[str, int, str]]:
        """(key, record hash, fields JSON) of the keys that have entries: one query per
        ``MAX_KEYS_PER_QUERY`` keys, sorted so the index is walked in order."""
        ordered = sorted(keys)
        rows: list[tuple[str, int, str]] = []

        def read() -> None:
            with self.engine.connect() as conn:
                for start in range(0, len(ordered), MAX_KEYS_PER_QUERY):
                    params = {"org_id": org_id, "object_type": object_type,
                              "keys": ordered[start:start + MAX_KEYS_PER_QUERY]}
                    rows.extend(conn.execute(self._lookup, params).tuples().all())

        self._retrying(read)
        return rows

    def upsert(self, rows: Iterable[dict[str, Any]], *, replace: bool) -> None:
        """Write rows (org_id, object, record_key, record_hash, fields) in one transaction.

        Rows go in key order so two PostgreSQL writers lock rows in the same order.
        """
        ordered = sorted(rows, key=lambda row: row["record_key"])
        if not ordered:
            return
        statement = self._replace if replace else self._merge
        self.write(lambda conn: conn.execute(statement, ordered))

    def write(self, work: Callable[[sa.Connection], T]) -> T:
        """Run ``work`` in one write transaction, retrying lock conflicts with backoff."""

        def attempt() -> T:
            with self.engine.connect() as conn:
                if self.dialect == "sqlite":
                    conn.exec_driver_sql("BEGIN IMMEDIATE")
                result = work(conn)
                conn.commit()
                return result

        return self._retrying(attempt)

    def _retrying(self, work: Callable[[], T]) -> T:
        for attempt in range(WRITE_ATTEMPTS):
            try:
                return work()
            except sa.exc.DBAPIError as exc:
                if is_corruption(exc):
                    raise StoreCorrupt(str(exc.orig)) from exc
                if attempt == WRITE_ATTEMPTS - 1 or not _is_transient(exc):
                    raise
                delay = _RETRY_BASE_DELAY_S * 2 ** attempt
                time.sleep(delay + random.uniform(0, delay))  # jitter: two waiting writers part
        raise AssertionError("unreachable")

    def dispose(self) -> None:
        self.engine.dispose()
