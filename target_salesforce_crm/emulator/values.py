"""Per-field value checks, producing the per-record errors an org reports for bad data.

The wording follows the contract's error table (§3.3) so a client's error
classification can be tested against realistic messages.
"""

from __future__ import annotations

import datetime
import math
import re
import string
from collections.abc import Sequence
from typing import Any

from .ids import parse_id, to_18
from .schema import FieldSpec, SObjectSchema

_TEXT_TYPES = frozenset({"string", "textarea", "email", "phone", "url", "picklist"})
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_EMAIL_PATTERN = (
    rf"{_ATOM}(?:\.{_ATOM})*@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{{0,61}}[A-Za-z0-9])?\.)+[A-Za-z]{{2,63}}"
)
_EMAIL = re.compile(_EMAIL_PATTERN)
_EMAIL_LINES = re.compile(rf"{_EMAIL_PATTERN}(?:\n{_EMAIL_PATTERN})*")
# Every character class of the address pattern is a union of these classes, so an address
# is valid exactly when its "shape" (letters -> a, digits -> 0, other atom characters -> !)
# is; shapes repeat far more than addresses, so known-good shapes are remembered.
_SHAPE = str.maketrans({**dict.fromkeys(string.ascii_letters, "a"),
                        **dict.fromkeys(string.digits, "0"),
                        **dict.fromkeys("!#$%&'*+/=?^_`{|}~", "!")})
_GOOD_SHAPES: set[str] = set()
_GOOD_SHAPES_LIMIT = 65536
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_DATETIME = re.compile(
    r"(\d{4}-\d{2}-\d{2})T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}:?\d{2})?"
)
_SHOWN_VALUE_LIMIT = 255

Error = dict[str, Any]


def utf16_length(text: str) -> int:
    """Length as Salesforce counts it: UTF-16 code units, so an emoji counts as 2.

    ASCII text (nearly all of it) is measured with `len`; anything else is encoded.
    """
    if text.isascii():
        return len(text)
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def record_error(code: str, message: str, fields: list[str] | tuple[str, ...] = ()) -> Error:
    """One entry of a per-record `errors` list (note `statusCode`, not `errorCode`)."""
    return {"statusCode": code, "message": message, "fields": list(fields)}


def emails_valid(values: Sequence[Any], max_length: int) -> bool:
    """Whether every value is a non-empty string of at most `max_length` characters that
    passes the email check, as `_text` would find them one by one (an address that
    passes is ASCII, so its length in characters is its length in UTF-16 units)."""
    try:
        text = "\n".join(values)
    except TypeError:
        return False  # not all strings
    if text.count("\n") != len(values) - 1:
        return False  # a value holding a newline is never an address
    shapes = set(text.translate(_SHAPE).split("\n"))  # a shape is as long as its address
    if "" in shapes or max(map(len, shapes)) > max_length:
        return False
    unknown = shapes - _GOOD_SHAPES
    if unknown:
        if not _EMAIL_LINES.fullmatch("\n".join(unknown)):
            return False
        if len(_GOOD_SHAPES) > _GOOD_SHAPES_LIMIT:
            _GOOD_SHAPES.clear()
        _GOOD_SHAPES.update(unknown)
    return True


def _shown(value: str) -> str:
    return value if len(value) <= _SHOWN_VALUE_LIMIT else value[:_SHOWN_VALUE_LIMIT] + "..."


def _wrong_type(spec: FieldSpec, value: Any) -> tuple[None, Error]:
    return None, record_error("INVALID_TYPE_ON_FIELD_IN_RECORD",
                              f"{spec.label}: value not of required type: {value}", [spec.name])


def _text(spec: FieldSpec, value: Any) -> tuple[Any, Error | None]:
    if isinstance(value, str):
        text = value
    elif isinstance(value, bool):
        text = "true" if value else "false"
    else:
        text = str(value)
    if utf16_length(text) > spec.length:
        return None, record_error(
            "STRING_TOO_LONG",
            f"{spec.label}: data value too large: {_shown(text)} (max length={spec.length})",
            [spec.name],
        )
    if spec.type == "email" and not _EMAIL.fullmatch(text):
        return None, record_error("INVALID_EMAIL_ADDRESS",
                                  f"{spec.label}: invalid email address: {_shown(text)}",
                                  [spec.name])
    if spec.restricted and text not in spec.picklist:
        return None, record_error(
            "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
            f"{spec.label}: bad value for restricted picklist field: {_shown(text)}",
            [spec.name],
        )
    return text, None


def _number(spec: FieldSpec, value: Any) -> tuple[Any, Error | None]:
    if isinstance(value, bool):
        return _wrong_type(spec, value)
    if isinstance(value, (int, float)):
        return value, None
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return _wrong_type(spec, value)
        if math.isfinite(number):
            return number, None
    return _wrong_type(spec, value)


def _boolean(spec: FieldSpec, value: Any) -> tuple[Any, Error | None]:
    if isinstance(value, bool):
        return value, None
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true", None
    return _wrong_type(spec, value)


def _date(spec: FieldSpec, value: Any) -> tuple[Any, Error | None]:
    pattern = _DATE if spec.type == "date" else _DATETIME
    match = pattern.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        return _wrong_type(spec, value)
    try:
        datetime.date.fromisoformat(value[:10])
    except ValueError:
        return _wrong_type(spec, value)
    return value, None


def _integer(spec: FieldSpec, value: Any) -> tuple[Any, Error | None]:
    if isinstance(value, bool):
        return _wrong_type(spec, value)
    if isinstance(value, int):
        return value, None
    if isinstance(value, float) and value.is_integer():
        return int(value), None
    if isinstance(value, str) and value.strip().lstrip("+-").isdigit():
        return int(value), None
    return _wrong_type(spec, value)


def _reference(spec: FieldSpec, value: Any) -> tuple[Any, Error | None]:
    key = parse_id(value)
    if key is None:
        return None, record_error("MALFORMED_ID",
                                  f"{spec.label}: id value of incorrect type: {value}",
                                  [spec.name])
    return to_18(key), None


def coerce(spec: FieldSpec, value: Any) -> tuple[Any, Error | None]:
    """Return the value as the org would store it, or the per-record error it raises.

    Empty strings mean null, as in Salesforce; a null checkbox is stored as false.
    """
    if value is None or (isinstance(value, str) and value == ""):
        return (False if spec.type == "boolean" else None), None
    ftype = spec.type
    if ftype in _TEXT_TYPES:
        return _text(spec, value)
    if ftype == "double":
        return _number(spec, value)
    if ftype == "boolean":
        return _boolean(spec, value)
    if ftype in ("date", "datetime"):
        return _date(spec, value)
    if ftype == "reference":
        return _reference(spec, value)
    if ftype == "int":
        return _integer(spec, value)
    return _wrong_type(spec, value)


def access_and_required(schema: SObjectSchema, spec_names: Sequence[FieldSpec],
                        values: dict[str, Any], failed: set[str], *,
                        creating: bool) -> list[Error]:
    """Field-permission and required-field errors for one record.

    On insert every required-on-create field must have a value; on update only
    fields explicitly set to null count as missing.
    """
    allowed = schema.createable_names if creating else schema.updateable_names
    if not failed and values.keys() <= allowed:
        if creating:
            if all(values.get(spec.name) is not None for spec in schema.required):
                return []
        elif None not in values.values():
            return []
    errors: list[Error] = []
    denied = [spec.name for spec in spec_names
              if not (spec.createable if creating else spec.updateable)]
    if denied:
        errors.append(record_error(
            "INVALID_FIELD_FOR_INSERT_UPDATE",
            f"Unable to create/update fields: {', '.join(denied)}. Please check the security "
            "settings of this field and verify that it is read/write for your profile or "
            "permission set.",
            denied,
        ))
    if creating:
        missing = [spec.name for spec in schema.required
                   if spec.name not in failed and values.get(spec.name) is None]
    else:
        missing = [spec.name for spec in spec_names
                   if not spec.nillable and spec.name in values and values[spec.name] is None]
    if missing:
        errors.append(record_error("REQUIRED_FIELD_MISSING",
                                   f"Required fields are missing: [{', '.join(missing)}]",
                                   missing))
    return errors
