"""Bulk API 2.0 CSV: the strict reader for uploads and the writer for result sets (contract §7).

Uploads are kept as the bytes received and parsed lazily, one internal batch at
a time, so a 100 MB job never exists as a million Python rows. Result sets are
CSV bytes, zlib-compressed per batch (level 1: about 10 ms per 10,000 rows,
and a fifth of the memory), joined only when a client reads them.
"""

from __future__ import annotations

import csv
import io
import random
import re
import zlib
from collections.abc import Iterable, Iterator, Sequence
from itertools import islice

DELIMITERS = {"COMMA": ",", "BACKQUOTE": "`", "CARET": "^", "PIPE": "|", "SEMICOLON": ";",
              "TAB": "\t"}
LINE_ENDINGS = {"LF": "\n", "CRLF": "\r\n"}
MAX_UPLOAD_BYTES = 100 * 1024 * 1024  # "upload data that does not exceed 100 MB"
# A CR or LF that is not part of a CRLF pair (only these need a look at the quoting).
_CRLF_ANOMALY = re.compile(rb"\r(?!\n)|(?<!\r)\n")
_CR = re.compile(rb"\r")


class CsvFailure(Exception):
    """Upload content that fails the whole job; the message is the job's `errorMessage`."""


def check_line_endings(data: bytes, line_ending: str) -> None:
    """Every line break outside quotes must be the job's `lineEnding`.

    Inside quotes any CR or LF is data. The common cases are settled by counting
    in C; only stray breaks are located and checked against the quote parity.
    """
    if line_ending == "CRLF":
        pairs = data.count(b"\r\n")
        if data.count(b"\r") == pairs == data.count(b"\n"):
            return
        strays: Iterable[re.Match[bytes]] = _CRLF_ANOMALY.finditer(data)
    else:
        if b"\r" not in data:
            return
        strays = _CR.finditer(data)
    quotes, last = 0, 0
    for match in strays:
        quotes += data.count(b'"', last, match.start())
        last = match.start()
        if quotes % 2 == 0:
            raise CsvFailure("ClientInputError : LineEnding is invalid on user data. Current "
                             f"LineEnding setting is {line_ending}")


class Upload:
    """The rows of one upload, read lazily: the header, then batches of rows.

    The text is decoded as it is read (no second copy of the upload), blank lines
    are skipped, and a BOM is not: it becomes part of the first field name, as on
    the org. A parse error fails the job, naming the line.
    """

    def __init__(self, data: bytes, delimiter: str) -> None:
        text = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8", newline="")
        self._reader = csv.reader(text, delimiter=delimiter, quotechar='"', doublequote=True,
                                  strict=True)
        self._rows = filter(None, self._reader)
        first = self._take(1)
        if not first:
            raise CsvFailure("ClientInputError : No data uploaded for this job")
        self.header: list[str] = first[0]

    def batches(self, size: int) -> Iterator[list[list[str]]]:
        while True:
            batch = self._take(size)
            if not batch:
                return
            yield batch

    def _take(self, size: int) -> list[list[str]]:
        try:
            return list(islice(self._rows, size))
        except csv.Error as exc:
            raise CsvFailure(f"ClientInputError : Invalid CSV at line {self._reader.line_num}: "
                             f"{exc}") from exc
        except UnicodeDecodeError as exc:
            raise CsvFailure(f"ClientInputError : Invalid UTF-8 after line "
                             f"{self._reader.line_num}: {exc.reason}") from exc


def header_line(prefix: Sequence[str], header: Sequence[str], delimiter: str,
                line_ending: str) -> bytes:
    """`"sf__Id","sf__Created",Email,...`: the result columns quoted, the job's own as sent."""
    terminator = LINE_ENDINGS[line_ending]
    fields = [f'"{name}"' for name in prefix]
    if header:
        buffer = io.StringIO()
        csv.writer(buffer, delimiter=delimiter, lineterminator=terminator).writerow(header)
        fields.append(buffer.getvalue()[: -len(terminator)])
    return (delimiter.join(fields) + terminator).encode()


def encode_rows(rows: Iterable[Sequence[str]], delimiter: str, line_ending: str) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, delimiter=delimiter, lineterminator=LINE_ENDINGS[line_ending],
               quoting=csv.QUOTE_ALL).writerows(rows)
    return buffer.getvalue().encode()


class ResultSet:
    """One result set of a job: a header and compressed chunks of rows."""

    __slots__ = ("chunks", "rows")

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.rows = 0

    def add(self, rows: Sequence[Sequence[str]], delimiter: str, line_ending: str) -> None:
        if rows:
            self.chunks.append(zlib.compress(encode_rows(rows, delimiter, line_ending), 1))
            self.rows += len(rows)

    def shuffle(self, rng: random.Random) -> None:
        rng.shuffle(self.chunks)

    def read(self, header: bytes) -> bytes:
        return header + b"".join(map(zlib.decompress, self.chunks))
