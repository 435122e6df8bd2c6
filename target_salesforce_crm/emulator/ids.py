"""Salesforce record Ids: 15-char case-sensitive keys and their 18-char checksummed form.

The emulator stores records under the 15-character key and always hands out the
18-character form, exactly as an org does, so clients meet both spellings.
"""

from __future__ import annotations

import re
from functools import lru_cache

_SUFFIX_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
_ID_CHARS = frozenset("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
_ID_SHAPE = re.compile(r"[0-9A-Za-z]{15}(?:[0-9A-Za-z]{3})?")
_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
# Pod/instance marker between the key prefix and the counter, like "0RM" in real Ids.
_INSTANCE = "8Em"
_COUNTER_WIDTH = 15 - 3 - len(_INSTANCE)
# Upper-case letters -> "1", everything else -> "0": one C-level pass per chunk.
_UPPER_BITS = str.maketrans({c: ("1" if "A" <= c <= "Z" else "0") for c in _BASE62})


@lru_cache(maxsize=65536)
def checksum(id15: str) -> str:
    """Return the 3-char suffix that makes a 15-char Id safe for case-insensitive systems.

    Each 5-char chunk becomes a bitmask of its upper-case letters (first char =
    lowest bit), looked up in A-Z0-5. Cached: the same Ids come back every call.
    """
    bits = id15.translate(_UPPER_BITS)
    return "".join(_SUFFIX_ALPHABET[int(bits[start : start + 5][::-1], 2)]
                   for start in (0, 5, 10))


def to_18(id15: str) -> str:
    """Extend a 15-char Id with its checksum suffix."""
    return id15 + checksum(id15)


def make_id(key_prefix: str, n: int) -> str:
    """Return the n-th deterministic, valid 18-char Id for an object's key prefix."""
    if len(key_prefix) != 3 or not set(key_prefix) <= _ID_CHARS:
        raise ValueError(f"key prefix must be 3 alphanumeric characters: {key_prefix!r}")
    if n < 0 or n >= 62**_COUNTER_WIDTH:
        raise ValueError(f"id counter out of range: {n}")
    digits = []
    for _ in range(_COUNTER_WIDTH):
        n, rest = divmod(n, 62)
        digits.append(_BASE62[rest])
    return to_18(key_prefix + _INSTANCE + "".join(reversed(digits)))


def parse_id(value: object) -> str | None:
    """Return the 15-char storage key of a well-formed Id, or None when it is malformed.

    15-char Ids are case-sensitive; an 18-char Id must carry the right checksum
    (compared case-insensitively, as Salesforce does for the suffix).
    """
    if not isinstance(value, str) or not _ID_SHAPE.fullmatch(value):
        return None
    key = value[:15]
    if len(value) == 18 and value[15:].upper() != checksum(key):
        return None
    return key
