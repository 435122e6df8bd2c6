"""Client-side Salesforce Id checks, so a bad Id never costs an API call.

Ids are 15 characters (case-sensitive) or 18 (the 15 plus a 3-character checksum that encodes
the case of the first 15, which makes the 18-character form case-insensitive).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

KEY_PREFIXES = {"Contact": "003", "Lead": "00Q", "Campaign": "701", "CampaignMember": "00v"}
_CHECKSUM_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
_ID_CHARS = re.compile(r"^[A-Za-z0-9]{15}(?:[A-Za-z0-5]{3})?$")


@dataclass(frozen=True)
class IdProblem:
    """Why an Id was refused: an error code for the dead-letter file and a message."""

    code: str
    message: str


_UPPER_AS_ONE = str.maketrans(
    {**{c: "0" for c in "abcdefghijklmnopqrstuvwxyz0123456789"},
     **{c: "1" for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ"}}
)

# "01001" (chunk characters 0..4, "1" = upper case) -> its checksum character
_CHUNK_CHAR = {
    format(n, "05b")[::-1]: _CHECKSUM_ALPHABET[n] for n in range(32)
}


def checksum(id15: str) -> str:
    """The 3-character suffix that turns a 15-character Id into its 18-character form.

    Each 5-character chunk gives a 5-bit number (bit i set when character i is upper case).
    """
    bits = id15.translate(_UPPER_AS_ONE)
    return _CHUNK_CHAR[bits[:5]] + _CHUNK_CHAR[bits[5:10]] + _CHUNK_CHAR[bits[10:15]]


def _restore_case(id18: str) -> str | None:
    """Rebuild the case of the first 15 characters from the checksum, whatever case they were
    given in; None when the checksum marks a digit as upper case (no Id has that suffix)."""
    restored = []
    for chunk, suffix_char in enumerate(id18[15:].upper()):
        bits = _CHECKSUM_ALPHABET.index(suffix_char)
        for offset, char in enumerate(id18[chunk * 5 : chunk * 5 + 5]):
            upper = bool(bits >> offset & 1)
            if upper and not char.isalpha():
                return None
            restored.append(char.upper() if upper else char.lower() if char.isalpha() else char)
    return "".join(restored) + id18[15:].upper()


def normalize_id(value: object, object_type: str) -> tuple[str | None, IdProblem | None]:
    """Return the 18-character Id for ``value``, or the problem that makes it unusable."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None, IdProblem("MISSING_ID", "the record has no Salesforce Id")
    if not isinstance(value, str):
        return None, IdProblem("MALFORMED_ID", "the Salesforce Id is not a string")
    candidate = value.strip()
    if not _ID_CHARS.match(candidate):
        return None, IdProblem(
            "MALFORMED_ID",
            f"the Salesforce Id has {len(candidate)} characters or invalid ones; "
            "expected 15 or 18 letters and digits",
        )
    if len(candidate) == 18 and checksum(candidate[:15]) == candidate[15:]:
        pass  # the Id exactly as Salesforce issued it: the usual case, and the cheapest
    elif len(candidate) == 18:
        # any case is the same record: the suffix (read case-insensitively) gives the case
        restored = _restore_case(candidate)
        if restored is None:
            return None, IdProblem("MALFORMED_ID", "the 18-character Id has a wrong checksum")
        candidate = restored
    else:
        candidate = candidate + checksum(candidate)
    prefix = KEY_PREFIXES[object_type]
    if candidate[:3] != prefix:
        owner = next((obj for obj, p in KEY_PREFIXES.items() if p == candidate[:3]), None)
        what = f"a {owner} Id" if owner else f"an Id with key prefix {candidate[:3]}"
        return None, IdProblem(
            "WRONG_OBJECT_ID",
            f"{what} cannot update a {object_type} (expected key prefix {prefix})",
        )
    return candidate, None


def is_salesforce_id(value: str | None, object_type: str) -> bool:
    """True for a well-formed Id of ``object_type`` (safe to log: it is not profile data)."""
    return bool(value) and normalize_id(value, object_type)[1] is None
