"""The on-disk spool of records bound for a Bulk API 2.0 job, so memory stays flat at any volume.

One spool per object: a throw-away SQLite file holding, per record key (Salesforce Id or
external id), the merged payload and the source records behind it. Keyed storage gives what a
flat CSV file cannot: a key spooled twice is merged (later values win, field by field), so a job
never carries a key twice and results are matched back by key; and the source records are at
hand for the dead-letter file when a row fails. ``write_csv`` renders the job's CSV with the
union of every column seen, so a column absent from the first record is not dropped.

Cost, measured on the benchmark's 1 KB profiles: about 6 µs per record to spool and 3 µs to
render, against one collections call (≈ 20 ms) saved per 200 records.
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
    """Bytes the payload's cells take inside their quotes."""
    return sum(cell_size(to_cell(value)) for name, value in payload.items() if name != _SKIPPED)


class Spool:
    """Entries for one object's Bulk jobs, on disk and merged by key."""

    def __init__(self, key_column: str, directory: str | None = None) -> None:
        self.key_column = key_column
        self._dir = tempfile.mkdtemp(prefix="target-salesforce-crm-spool-", dir=directory)
        self._db = sqlite3.connect(os.path.join(self._dir, "spool.sqlite"))
        self._db.executescript(
            "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; PRAGMA temp_store=MEMORY;"
            "CREATE TABLE entries (key TEXT PRIMARY KEY, seq INTEGER, stream TEXT,"
            " content INTEGER, payload BLOB, records BLOB);"
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

    def csv_bytes_with(self, payloads: Iterable[dict[str, Any]]) -> int:
        """Size after adding ``payloads`` as new rows (an upper bound: merges add less)."""
        rows, content, header, columns = self.rows, self._content, self._header_content, dict(
            self.columns)
        for payload in payloads:
            rows += 1
            content += row_content(payload)
            for name in payload:
                column = column_name(name)
                if name != _SKIPPED and column not in columns:
                    columns[column] = None
                    header += cell_size(column)
        return csv_bytes(rows, len(columns), content, header)

    def get_many(self, keys: Collection[str]) -> dict[str, SpooledEntry]:
        if not self.rows or not keys:
            return {}
        found: dict[str, SpooledEntry] = {}
        keys = list(keys)
        for start in range(0, len(keys), 500):
            part = keys[start:start + 500]
            marks = ",".join("?" * len(part))
            for key, payload, records in self._db.execute(
                    f"SELECT key, payload, records FROM entries WHERE key IN ({marks})",  # noqa: S608
                    part):
                found[key] = _entry(key, payload, records)
        return found

    def put_many(self, entries: Iterable[SpooledEntry]) -> None:
        """Insert or replace each entry (the caller merged it with what was spooled)."""
        with self._db:
            for entry in entries:
                self._put(entry)

    def _put(self, entry: SpooledEntry) -> None:
        old = self._db.execute("SELECT content, stream FROM entries WHERE key = ?",
                               (entry.key,)).fetchone()
        if old is not None:
            self._content -= old[0]
            self.streams[old[1]] -= 1
            self.rows -= 1
        content = row_content(entry.payload)
        self._seq += 1
        self._db.execute(
            "INSERT OR REPLACE INTO entries VALUES (?, ?, ?, ?, ?, ?)",
            (entry.key, self._seq, entry.stream, content,
             pickle.dumps(entry.payload, pickle.HIGHEST_PROTOCOL),
             pickle.dumps(entry.records, pickle.HIGHEST_PROTOCOL)),
        )
        self._content += content
        self.rows += 1
        self.streams[entry.stream] += 1
        for name in entry.payload:
            column = column_name(name)
            if name != _SKIPPED and column not in self.columns:
                self.columns[column] = None
                self._header_content += cell_size(column)

    def remove(self, keys: Iterable[str]) -> list[SpooledEntry]:
        """Take these keys out of the spool; returns those that were there."""
        removed = list(self.get_many(list(keys)).values())
        with self._db:
            for entry in removed:
                self._forget(entry.key)
        return removed

    def _forget(self, key: str) -> None:
        content, stream = self._db.execute(
            "SELECT content, stream FROM entries WHERE key = ?", (key,)).fetchone()
        self._db.execute("DELETE FROM entries WHERE key = ?", (key,))
        self._content -= content
        self.rows -= 1
        self.streams[stream] -= 1

    def entries(self, streams: Collection[str]) -> Iterator[SpooledEntry]:
        """Every entry whose latest record came from one of ``streams``, in spooling order."""
        marks = ",".join("?" * len(streams))
        cursor = self._db.execute(
            f"SELECT key, payload, records FROM entries WHERE stream IN ({marks})"  # noqa: S608
            " ORDER BY seq", list(streams))
        for key, payload, records in cursor:
            yield _entry(key, payload, records)

    def take(self, streams: Collection[str], batch: int = 1000) -> Iterator[SpooledEntry]:
        """Like ``entries``, each one leaving the spool as it is handed out."""
        marks = ",".join("?" * len(streams))
        query = (f"SELECT key, payload, records FROM entries WHERE stream IN ({marks})"  # noqa: S608
                 " ORDER BY seq LIMIT ?")
        while True:
            rows = self._db.execute(query, [*streams, batch]).fetchall()
            if not rows:
                return
            taken = [_entry(*row) for row in rows]
            with self._db:
                for entry in taken:
                    self._forget(entry.key)
            yield from taken

    def write_csv(self, path: Path, streams: Collection[str]) -> int:
        """The job's CSV for these streams' entries: header of the union of columns, then one
        row per entry; returns the number of rows."""
        columns = list(self.columns)
        fields = ["id" if name == "Id" else name for name in columns]
        count = 0
        with path.open("w", encoding="utf-8", newline="") as out:
            out.write(csv_line(columns))
            for entry in self.entries(streams):
                payload = entry.payload
                out.write(csv_line([to_cell(payload.get(name)) for name in fields]))
                count += 1
        return count

    def close(self) -> None:
        self._db.close()
        shutil.rmtree(self._dir, ignore_errors=True)


def _entry(key: str, payload: bytes, records: bytes) -> SpooledEntry:
    # our own temporary file, written by this process a moment ago
    return SpooledEntry(key, pickle.loads(payload), pickle.loads(records))  # noqa: S301
