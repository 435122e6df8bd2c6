"""Python values → what a Salesforce field of a given type receives, or why it cannot.

Called per field per record from the converters ``RecordMapper`` builds once per field.
"""

from __future__ import annotations

import datetime
import decimal
import math
from collections.abc import Callable
from typing import Any

from target_salesforce_crm.rejections import RecordRejected, Rejection
from target_salesforce_crm.salesforce.describe import FieldSpec


def utf16_length(text: str) -> int:
    """Length as Salesforce counts it: an emoji or another character beyond the Basic
    Multilingual Plane is a surrogate pair, two units."""
    return len(text.encode("utf-16-le")) // 2


def cut_utf16(text: str, units: int) -> str:
    """The longest prefix of at most ``units`` UTF-16 units, never half a surrogate pair."""
    encoded = text.encode("utf-16-le")[: 2 * units]
    if encoded and 0xD8 <= encoded[-1] <= 0xDB:  # a high surrogate whose pair was cut off
        encoded = encoded[:-2]
    return encoded.decode("utf-16-le")


def refuse_non_finite(spec: FieldSpec, value: Any) -> None:
    """NaN and ±Infinity (read from NaN/Infinity input) are no value in Salesforce, not even
    as text: "nan" in a Phone field would be data nobody sent."""
    if isinstance(value, float):
        finite, infinite = math.isfinite(value), math.isinf(value)
    elif isinstance(value, decimal.Decimal):
        finite, infinite = value.is_finite(), value.is_infinite()
    else:
        return
    if not finite:
        what = "an infinite number" if infinite else "NaN"
        raise RecordRejected(Rejection(
            "INVALID_FIELD_VALUE", f"{spec.name} holds {what}, which Salesforce cannot store",
            (spec.name,)))


def as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime.datetime):
        return _iso_datetime(value)
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return format(value, "f")
    return str(value)


def as_bool(spec: FieldSpec, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise RecordRejected(
        Rejection("INVALID_FIELD_VALUE", f"{spec.name} expects true or false", (spec.name,))
    )


def as_number(spec: FieldSpec, value: Any, *, integer: bool) -> int | float:
    try:
        if isinstance(value, bool):
            raise ValueError
        number = decimal.Decimal(value) if isinstance(value, str) else value
        if not math.isfinite(number):
            raise ValueError
        if integer:
            if number != int(number):
                raise ValueError
            return int(number)
        if isinstance(number, decimal.Decimal):
            return int(number) if number == number.to_integral_value() else float(number)
        return number
    except (ValueError, TypeError, ArithmeticError):
        what = "an integer" if integer else "a number"
        raise RecordRejected(
            Rejection("INVALID_FIELD_VALUE", f"{spec.name} expects {what}", (spec.name,))
        ) from None


def _iso_datetime(value: datetime.datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=datetime.timezone.utc)
    return value.isoformat()


def _parsed(parse: Callable[[str], Any], text: str) -> Any:
    """``parse(text)``, or None when the text is not in that ISO 8601 form."""
    try:
        return parse(text)
    except ValueError:
        return None


def as_date(spec: FieldSpec, value: Any) -> str:
    if isinstance(value, datetime.datetime):
        return value.date().isoformat()
    if isinstance(value, datetime.date):
        return value.isoformat()
    parsed = _parsed(datetime.date.fromisoformat, value[:10]) if isinstance(value, str) else None
    if parsed is None:
        raise RecordRejected(Rejection(
            "INVALID_FIELD_VALUE", f"{spec.name} expects a date (YYYY-MM-DD)", (spec.name,)))
    return str(parsed.isoformat())


def as_datetime(spec: FieldSpec, value: Any) -> str:
    if isinstance(value, datetime.datetime):
        return _iso_datetime(value)
    parsed = (
        _parsed(datetime.datetime.fromisoformat, value.replace("Z", "+00:00"))
        if isinstance(value, str) else None
    )
    if parsed is None:
        raise RecordRejected(Rejection(
            "INVALID_FIELD_VALUE", f"{spec.name} expects an ISO 8601 date-time", (spec.name,)))
    return _iso_datetime(parsed)
