"""Turn a JSONL file of records into a Singer stream on stdout, with no tap to install.

Usage: python scripts/jsonl_to_singer.py STREAM FILE.jsonl

Writes one SCHEMA (each top-level key typed by the JSON values seen for it, nullable), one
RECORD per line and a final STATE: the messages a JSONL tap sends for the same file.
"""

from __future__ import annotations

import json
import sys
from typing import Any

_JSON_TYPES = ((bool, "boolean"), (int, "integer"), (float, "number"), (str, "string"),
               (dict, "object"), (list, "array"))


def _json_type(value: Any) -> str:
    for python_type, name in _JSON_TYPES:
        if isinstance(value, python_type):
            return name
    return "null"


def singer_messages(stream: str, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen: dict[str, set[str]] = {}
    for record in records:
        for key, value in record.items():
            seen.setdefault(key, set()).add(_json_type(value))
    properties = {key: {"type": sorted(types | {"null"})} for key, types in seen.items()}
    schema = {"type": "object", "properties": properties}
    return [
        {"type": "SCHEMA", "stream": stream, "schema": schema, "key_properties": []},
        *({"type": "RECORD", "stream": stream, "record": record} for record in records),
        {"type": "STATE", "value": {stream: {"records": len(records)}}},
    ]


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    stream, path = argv
    with open(path, encoding="utf-8") as handle:
        records = [json.loads(line) for line in handle if line.strip()]
    for message in singer_messages(stream, records):
        sys.stdout.write(json.dumps(message, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
