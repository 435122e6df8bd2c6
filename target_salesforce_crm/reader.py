"""A Singer message reader that never echoes an input line (it may hold profile data)."""

from __future__ import annotations

import json

from singer_sdk.io_base import SingerReader
from singer_sdk.singerlib.exceptions import InvalidInputLine
from singer_sdk.singerlib.json import deserialize_json


class QuietSingerReader(SingerReader):
    """Like the SDK's reader, but errors name the line number, not the line's content."""

    def __init__(self) -> None:
        super().__init__()
        self.line_number = 0

    def deserialize_json(self, line: str) -> dict:
        self.line_number += 1
        try:
            return deserialize_json(line)
        except json.JSONDecodeError as exc:
            msg = (
                f"input line {self.line_number} is not valid JSON ({exc.msg} at column "
                f"{exc.colno}); the line is not logged because it may hold profile data"
            )
            raise InvalidInputLine(msg) from None

    @staticmethod
    def assert_line_requires(line_dict: dict, requires: set[str]) -> None:
        missing = requires - set(line_dict)
        if missing:
            msg = f"an input message lacks the required key(s) {', '.join(sorted(missing))}"
            raise InvalidInputLine(msg)
