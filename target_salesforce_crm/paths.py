"""Source paths into a record, as the tap wrote it or as the SDK flattened it.

With ``flattening_enabled`` the SDK rewrites each record before the sink sees it: nested keys
become one top-level key joined by ``flattening_separator`` (``person__name__lastName``), at
most ``flattening_max_depth`` levels deep, and whatever lies deeper (or is a list) becomes a
JSON string (``segmentMembership__ups`` = ``'{"seg-1": {"status": "realized"}}'``). A path is
looked up in all those forms, so a flattened record maps exactly as the nested one would.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from singer_sdk.singerlib.json import deserialize_json

from target_salesforce_crm.settings import Settings

_MISSING = object()
SDK_SEPARATOR = "__"  # the SDK's default flattening_separator
SDK_MAX_KEY_LENGTH = 255  # the SDK's default flattening_max_key_length


@dataclass(frozen=True)
class Flattening:
    """The SDK's flattening settings, when they are in effect."""

    separator: str
    max_depth: int
    max_key_length: int

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Flattening | None:
        """None when the SDK does not flatten (off, or a depth below 1, as the SDK decides)."""
        depth = config.get("flattening_max_depth")
        if not config.get("flattening_enabled") or not isinstance(depth, int) or depth < 1:
            return None
        separator = config.get("flattening_separator")
        max_key_length = config.get("flattening_max_key_length")
        return cls(
            separator=SDK_SEPARATOR if separator is None else str(separator),
            max_depth=depth,
            max_key_length=max_key_length if isinstance(max_key_length, int)
            else SDK_MAX_KEY_LENGTH,
        )

    def keys(self, parts: tuple[str, ...]) -> tuple[tuple[str, tuple[str, ...]], ...]:
        """The top-level keys a path may sit under, deepest first, each with the rest of the
        path inside its value: key ``a__b`` holds ``c`` of ``a.b.c`` in its JSON string."""
        deepest = min(len(parts), self.max_depth + 1)
        return tuple(
            (self.separator.join(parts[:depth]), parts[depth:]) for depth in range(deepest, 0, -1)
        )

    def shortened_key(self, parts: tuple[str, ...]) -> str | None:
        """A key of this path that the SDK would shorten (its ``flatten_key`` abbreviates
        every key of ``max_key_length`` characters or more), so no record would hold it."""
        key = self.keys(parts)[0][0]
        return key if len(key) >= self.max_key_length else None


class Path:
    """A source path: tried as one literal key first, then walked through nested objects, then
    as the flattened key (``a__b__c``). With flattening, the keys the SDK may have written (see
    ``Flattening.keys``) instead of the last two. ``get`` is built once per path: it runs per
    record."""

    __slots__ = ("flat", "get", "parts", "text")

    def __init__(self, text: str, flattening: Flattening | None = None) -> None:
        self.text = text
        self.parts = tuple(text.split("."))
        self.flat = SDK_SEPARATOR.join(self.parts)
        self.get: Callable[[dict[str, Any]], Any] = (
            self._flattened_getter(flattening) if flattening else self._getter()
        )

    def _getter(self) -> Callable[[dict[str, Any]], Any]:
        text, parts, flat = self.text, self.parts, self.flat
        if len(parts) == 1:
            def get_key(record: dict[str, Any]) -> Any:
                return record.get(text)

            return get_key

        def get_path(record: dict[str, Any]) -> Any:
            value = record.get(text, _MISSING)
            if value is not _MISSING:
                return value
            node: Any = record
            for part in parts:
                node = node.get(part, _MISSING) if isinstance(node, dict) else _MISSING
                if node is _MISSING:
                    return record.get(flat)
            return node

        return get_path

    def _flattened_getter(self, flattening: Flattening) -> Callable[[dict[str, Any]], Any]:
        # the literal key first and a tap's own "__" keys last, as without flattening
        candidates = tuple(dict.fromkeys(
            ((self.text, ()), *flattening.keys(self.parts), (self.flat, ()))))

        def get_flattened(record: dict[str, Any]) -> Any:
            for key, rest in candidates:
                value = record.get(key, _MISSING)
                if value is not _MISSING:
                    return walk(value, rest) if rest else value
            return None

        return get_flattened


def walk(node: Any, parts: tuple[str, ...]) -> Any:
    """Follow ``parts`` into nested objects, decoding a JSON-encoded object on the way."""
    for part in parts:
        if node.__class__ is str:
            node = json_object(node)
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node


@functools.lru_cache(maxsize=16)
def json_object(text: str) -> dict[str, Any] | None:
    """The object a flattened record holds as JSON text (numbers with a fraction as Decimal,
    as the reader gives them), or None. Cached: several paths of one record enter the same
    string (``person`` for LastName and FirstName, the memberships for every segment); a
    reference profile flattened at depth 1 with two segments maps in about 18 µs instead of
    41 µs (best of 15 x 2,000 records)."""
    if not text.startswith("{"):
        return None
    try:
        value = deserialize_json(text)
    except (json.JSONDecodeError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def json_list(text: str) -> Any:
    """The list a flattened record holds as JSON text, or the text itself when it is not
    one (a value that merely starts with "[")."""
    try:
        value = deserialize_json(text)
    except (json.JSONDecodeError, RecursionError):
        return text
    return value if isinstance(value, list) else text


def source_paths(settings: Settings) -> dict[str, str]:
    """Every record path the settings read, with the setting that names it."""
    paths = {settings.id_source: "id_source"}
    if settings.external_id_source:
        paths[settings.external_id_source] = "external_id_source"
    for object_type in dict.fromkeys((settings.object_type,
                                      *settings.stream_object_types.values())):
        for mapping in settings.mappings_for(object_type):
            paths.setdefault(mapping.source, f"field_mappings source for {mapping.target}")
    for segment in settings.segment_mappings:
        path = f"{settings.segment_membership_path}.{segment.segment_id}.status"
        paths.setdefault(path, f"segment_mappings {segment.segment_id}")
    return paths


def flattening_problems(settings: Settings, flattening: Flattening | None) -> list[str]:
    """Paths the SDK's flattening would make unreadable, one message each."""
    if flattening is None:
        return []
    problems = []
    for path, where in source_paths(settings).items():
        key = flattening.shortened_key(tuple(path.split(".")))
        if key is not None:
            problems.append(
                f"flattening_max_key_length {flattening.max_key_length} makes the SDK shorten "
                f"the flattened key {key!r} ({len(key)} characters) of path {path!r} "
                f"({where}), so its values could not be found; raise flattening_max_key_length "
                f"above {len(key)} or lower flattening_max_depth"
            )
    return problems
