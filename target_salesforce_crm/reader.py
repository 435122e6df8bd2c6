"""A Singer message reader: fast (msgspec), and it never echoes an input line (it may hold
profile data)."""

from __future__ import annotations

import contextlib
import decimal
import json
import typing as t
from collections import Counter

import msgspec
from singer_sdk.io_base import SingerReader
from singer_sdk.singerlib.exceptions import InvalidInputLine
from singer_sdk.singerlib.json import deserialize_json

# Numbers with a fraction or exponent become Decimal, exactly as the SDK's own reader does.
_decode = msgspec.json.Decoder(float_hook=decimal.Decimal).decode


class QuietSingerReader(SingerReader):
    """Like the SDK's reader, but about 5x cheaper per line, and errors name the line number,
    not the line's content."""

    def __init__(self) -> None:
        super().__init__()
        self.line_number = 0

    def deserialize_json(self, line: str | bytes) -> dict:
        self.line_number += 1
        with contextlib.suppress(msgspec.DecodeError):
            return _decode(line)
        try:  # what msgspec refuses but Python's json accepts (NaN, Infinity) still reads
            return deserialize_json(line)
        except json.JSONDecodeError as exc:
            problem = f"{exc.msg} at column {exc.colno}"
        except UnicodeDecodeError as exc:
            problem = f"invalid UTF-8 at byte {exc.start}"
        msg = (
            f"input line {self.line_number} is not valid JSON ({problem}); the line is not "
            "logged because it may hold profile data"
        )
        raise InvalidInputLine(msg) from None

    @staticmethod
    def assert_line_requires(line_dict: dict, requires: set[str]) -> None:
        if not isinstance(line_dict, dict):
            msg = "an input message is not a JSON object"
            raise InvalidInputLine(msg)
        missing = requires - set(line_dict)
        if missing:
            msg = f"an input message lacks the required key(s) {', '.join(sorted(missing))}"
            raise InvalidInputLine(msg)

    def process_lines(
        self,
        file_input: t.IO[str] | None,
        callbacks: dict[str, t.Callable[[dict], None]],
    ) -> Counter[str]:
        """The SDK's loop with the per-line overhead taken out (it runs once per record)."""
        counts: Counter[str] = Counter()
        deserialize = self.deserialize_json
        source = file_input or self.default_input
        # bytes straight from the binary buffer: msgspec reads UTF-8 without a str in between
        for line in getattr(source, "buffer", source):
            message = deserialize(line)
            message_type = message.get("type") if isinstance(message, dict) else None
            if message_type is None:
                self.assert_line_requires(message, {"type"})
            callback = callbacks.get(message_type)  # type: ignore[arg-type]
            if callback is None:
                self._process_unknown_message(message)
            else:
                callback(message)
            counts[message_type] += 1  # type: ignore[index]
        return counts
