"""The on-disk spool of records bound for a Bulk API 2.0 job, so memory stays flat at any volume.

One spool per object: a throw-away SQLite file holding, per record key (Salesforce Id or
external id), the merged payload and the source records behind it. Keyed storage gives what a
flat CSV file cannot: a key spooled twice is merged (later values win, field by field), so a job
never carries a key twice and results are matched back by key; and the source records are at
hand for the dead-letter file when a row fails. ``write_csv`` renders the job's CSV with the
union of every column seen, so a column absent from the first record is not dropped.

Measured (the CLI against the emulator, reference profiles, shared 2-core box): 100,000 records
through Bulk took 13 API calls instead of 502 and about 40 µs more target CPU per record (spool,
render, match results: 82 against 40 µs); memory stays flat: 54 MB at the peak of a
150,000-record run, the same as 60,000 records take through collections.
"""

from __future__ import annotations

import os
import pickle
import shutil
import sqlite3
import tempfile
from collections import Counter
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from target_salesforce_crm.salesforce.bulk import NULL_CELL, cell_size, csv_bytes, csv_line

SpooledRecords = list[tuple[str, dict[str, Any]]]  # (stream, source record), oldest first
_SKIPPED = "attributes"


@dataclass
class SpooledEntry:
    key: str
    payload: dict[str, Any]
    records: SpooledRecords
    content: int | None = None  # ``row_content(payload)`` when already known
    memberships: dict[str, str] | None = None  # campaign segment id → status
    moves: int = 0  # times the entry was redirected to a converted or surviving record

    @property
    def stream(self) -> str:
        """The stream of the latest record: its transport decides where the entry goes."""
        return self.records[-1][0]


def column_name(field: str) -> str:
    return "Id" if field == "id" else field


def to_cell(value: Any) -> str:
    """A payload value as a Bulk CSV cell: what a collections call would carry, as text.

    An empty string clears the field in a collections call, so it becomes ``#N/A`` (Bulk's null);
    an absent or null value is an empty cell, which leaves the field as it is."""
    if value is None:
        return ""
    if value.__class__ is str:
        return value or NULL_CELL
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def bulk_expressible(payload: dict[str, Any]) -> bool:
    """False when a value would change meaning in a Bulk CSV: the text ``#N/A`` (read as null)."""
    return not any(
        value.__class__ is str and value.strip().upper() == NULL_CELL
        for value in payload.values()
    )


def row_content(payload: dict[str, Any]) -> int:
    """Bytes the payload's cells take inside their quotes (text, the usual value, inline)."""
    total = 0
    for name, value in payload.items():
        if value.__class__ is str:
            if not value:
                total += len(NULL_CELL)
            elif value.isascii():
                total += len(value) + value.count('"')
            else:
                total += cell_size(value)
        elif name != _SKIPPED:
            total += cell_size(to_cell(value))
    return total


class Spool:
    """Entries for one object's Bulk jobs, on disk and merged by key."""

    def __init__(self, key_column: str, directory: str | None = None) -> None:
        self.key_column = key_column
        self._dir = tempfile.mkdtemp(prefix="target-salesforce-crm-spool-", dir=directory)
        self._db = sqlite3.connect(os.path.join(self._dir, "spool.sqlite"))
        self._db.executescript(
            "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;"
            # seq is the rowid: reading in spooling order is a plain scan, not a sort in memory
            "CREATE TABLE entries (key TEXT UNIQUE NOT NULL, seq INTEGER PRIMARY KEY,"
            " stream TEXT, content INTEGER, payload BLOB, records BLOB);"
        )
        self.columns: dict[str, None] = {key_column: None}  # the union, in order of appearance
        self.rows = 0
        self._content = 0
        self._header_content = cell_size(key_column)
        self._seq = 0
        self.streams: Counter[str] = Counter()

    def __len__(self) -> int:
        return self.rows

    @property
    def csv_bytes(self) -> int:
        """Exact size of the job's CSV if it were written now (every row, every column)."""
        return csv_bytes(self.rows, len(self.columns), self._content, self._header_content)

    def csv_bytes_with(self, contents: Iterable[int], payloads: Iterable[dict[str, Any]]
                       ) -> int:
        """Size after adding rows of these contents and payloads (an upper bound: a merge
        replaces a row)."""
        rows, content, header = self.rows, self._content, self._header_content
        columns = len(self.columns)
        for row in contents:
            rows += 1
            content += row
        new = {column_name(name) for payload in payloads for name in payload
               if name != _SKIPPED} - self.columns.keys()
        columns += len(new)
        header += sum(cell_size(name) for name in new)
        return csv_bytes(rows, columns, content, header)

    def keys_in(self, keys: Collection[str]) -> set[str]:
        """Those of ``keys`` spooled (for the sync ledger: a write not yet landed)."""
        found: set[str] = set()
        if not self.rows or not keys:
            return found
        keys = list(keys)
        for start in range(0, len(keys), 500):
            part = keys[start:start + 500]
            found.update(key for (key,) in self._db.execute(
                f"SELECT key FROM entries WHERE key IN ({','.join('?' * len(part))})",  # noqa: S608
                part))
        return found

    def get_many(self, keys: Collection[str]) -> dict[str, SpooledEntry]:
        return {entry.key: entry for entry in self._select(keys)}

    def _select(self, keys: Collection[str], *, records: bool = True
                ) -> Iterator[SpooledEntry]:
        if not self.rows or not keys:
            return
        keys = list(keys)
        for start in range(0, len(keys), 500):
            part = keys[start:start + 500]
            yield from self._rows(f"key IN ({','.join('?' * len(part))})", part,
                                  records=records)

    def _rows(self, where: str, parameters: list[Any], *, records: bool = True
              ) -> Iterator[SpooledEntry]:
        wanted = "records" if records else "NULL"
        cursor = self._db.execute(
            f"SELECT key, payload, {wanted}, content, stream FROM entries WHERE {where}",  # noqa: S608
            parameters)
        for key, payload, stored, content, stream in cursor:
            values, memberships = pickle.loads(payload)  # noqa: S301 - our own temp file
            sources, moves = pickle.loads(stored) if stored else ([(stream, {})], 0)  # noqa: S301
            yield SpooledEntry(key, values, sources, content, memberships, moves)

    def put_many(self, entries: Iterable[SpooledEntry]) -> None:
        """Insert or replace each entry (the caller merged it with what was spooled)."""
        entries = list(entries)
        old = self._db.execute(
            f"SELECT key, content, stream FROM entries WHERE key IN "  # noqa: S608
            f"({','.join('?' * len(entries))})", [e.key for e in entries]
        ).fetchall() if self.rows and entries else []
        for _, content, stream in old:
            self._content -= content
            self.streams[stream] -= 1
            self.rows -= 1
        values = []
        for entry in entries:
            content = row_content(entry.payload) if entry.content is None else entry.content
            self._seq += 1
            values.append((entry.key, self._seq, entry.stream, content,
                           pickle.dumps((entry.payload, entry.memberships),
                                        pickle.HIGHEST_PROTOCOL),
                           pickle.dumps((entry.records, entry.moves), pickle.HIGHEST_PROTOCOL)))
            self._content += content
            self.rows += 1
            self.streams[entry.stream] += 1
            for name in entry.payload:
                if name != _SKIPPED and (column := column_name(name)) not in self.columns:
                    self.columns[column] = None
                    self._header_content += cell_size(column)
        with self._db:
            self._db.executemany("INSERT OR REPLACE INTO entries VALUES (?, ?, ?, ?, ?, ?)",
                                 values)

    def remove(self, keys: Iterable[str], *, records: bool = True) -> list[SpooledEntry]:
        """Take these keys out of the spool; returns those that were there (``records=False``:
        without their source records, each entry's stream standing for them)."""
        removed = list(self._select(list(keys), records=records))
        self._forget(removed)
        return removed

    def _forget(self, entries: list[SpooledEntry]) -> None:
        if not entries:
            return
        with self._db:
            self._db.executemany("DELETE FROM entries WHERE key = ?",
                                 [(entry.key,) for entry in entries])
        for entry in entries:
            self._content -= entry.content or 0
            self.rows -= 1
            self.streams[entry.stream] -= 1

    def entries(self, streams: Collection[str], *, records: bool = True
                ) -> Iterator[SpooledEntry]:
        """Every entry whose latest record came from one of ``streams``, in spooling order
        (``records=False``: payloads only, each entry's stream standing for its records)."""
        marks = ",".join("?" * len(streams))
        return self._rows(f"stream IN ({marks}) ORDER BY seq", list(streams), records=records)

    def take(self, streams: Collection[str], batch: int = 1000) -> Iterator[SpooledEntry]:
        """Like ``entries``, each one leaving the spool as it is handed out."""
        marks = ",".join("?" * len(streams))
        while True:
            taken = list(self._rows(f"stream IN ({marks}) ORDER BY seq LIMIT ?",
                                    [*streams, batch]))
            if not taken:
                return
            self._forget(taken)
            yield from taken

    def write_csv(self, path: Path, streams: Collection[str]) -> int:
        """The job's CSV for these streams' entries: header of the union of columns, then one
        row per entry; returns the number of rows."""
        columns = list(self.columns)
        fields = ["id" if name == "Id" else name for name in columns]
        count = 0
        with path.open("w", encoding="utf-8", newline="") as out:
            out.write(csv_line(columns))
            for entry in self.entries(streams, records=False):
                payload = entry.payload
                out.write(csv_line([to_cell(payload.get(name)) for name in fields]))
                count += 1
        return count

    def close(self) -> None:
        self._db.close()
        shutil.rmtree(self._dir, ignore_errors=True)
