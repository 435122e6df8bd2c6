"""The quick schema check never accepts what fastjsonschema rejects, and covers usual schemas."""

from __future__ import annotations

import decimal
import itertools
from typing import Any

import fastjsonschema
import pytest
from singer_sdk.exceptions import InvalidRecord

from target_salesforce_crm.validation import CompiledValidator, quick_check

PROFILE_SCHEMA = {
    "type": "object",
    "properties": {
        "crmID": {"type": "string"},
        "age": {"type": ["integer", "null"]},
        "score": {"type": "number"},
        "vip": {"type": "boolean"},
        "tags": {"type": "array", "items": {"type": "string"}},
        "updated": {"anyOf": [{"type": "string", "format": "date-time"}, {"type": "null"}]},
        "person": {
            "type": ["object", "null"],
            "properties": {"name": {"type": "object", "required": ["last"],
                                    "properties": {"last": {"type": "string"}}}},
        },
        "segmentMembership": {
            "type": "object",
            "properties": {"ups": {"type": "object", "additionalProperties": {
                "type": "object",
                "properties": {"status": {"type": "string",
                                          "enum": ["realized", "existing", "exited"]}},
            }}},
        },
        "closed": {"type": "object", "properties": {"a": {}}, "additionalProperties": False},
    },
    "required": ["crmID"],
}

VALUES: list[Any] = [
    None, True, False, 0, 1, -7, 2**70, 1.0, 1.5, decimal.Decimal("2.50"), decimal.Decimal("3"),
    "", "x", "realized", "exited ", [], ["a"], ["a", 1], (), {}, {"last": "L"}, {"last": 3},
    {"ups": {"s1": {"status": "realized"}}}, {"ups": {"s1": {"status": "gone"}}},
    {"ups": {"s1": "realized"}}, {"a": 1}, {"a": 1, "b": 2}, {"name": {"last": "L"}},
    {"name": {}}, {"name": None},
]


def _fast_verdict(validate: Any, record: Any) -> bool:
    try:
        validate(record)
    except fastjsonschema.JsonSchemaValueException:
        return False
    return True


def test_profile_schema_is_covered_by_the_quick_check() -> None:
    assert quick_check(PROFILE_SCHEMA) is not None


@pytest.mark.parametrize("field", sorted(PROFILE_SCHEMA["properties"]))
def test_quick_check_never_accepts_what_fastjsonschema_rejects(field: str) -> None:
    quick = quick_check(PROFILE_SCHEMA)
    full = fastjsonschema.compile(PROFILE_SCHEMA, use_formats=False)
    assert quick is not None
    accepted = 0
    for value in VALUES:
        record = {"crmID": "003", field: value}
        if quick(record):
            accepted += 1
            assert _fast_verdict(full, record), (field, value)
    assert accepted, f"the quick check accepted no value for {field}"


def test_quick_check_agrees_on_plain_typed_records() -> None:
    quick = quick_check(PROFILE_SCHEMA)
    assert quick is not None
    good = {"crmID": "0031", "age": 3, "score": decimal.Decimal("1.5"), "vip": False,
            "tags": ["a"], "updated": None, "person": {"name": {"last": "L"}},
            "segmentMembership": {"ups": {"s": {"status": "exited"}}}, "closed": {"a": [1]}}
    assert quick(good)
    for key, bad in [("crmID", None), ("age", "3"), ("vip", 0), ("tags", ["a", 1]),
                     ("person", {"name": {}}), ("closed", {"b": 1})]:
        assert not quick({**good, key: bad}), key
    assert not quick({"age": 3})  # crmID is required


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "object", "properties": {"a": {"type": "string", "maxLength": 3}}},
        {"type": "object", "patternProperties": {"^x": {"type": "string"}}},
        {"type": "object", "properties": {"a": {"$ref": "#/definitions/x"}},
         "definitions": {"x": {"type": "string"}}},
        {"type": "object", "properties": {"a": {"enum": [1, 2]}}},
        {"type": "object", "properties": {"a": {"type": "array", "items": [{"type": "string"}]}}},
        {"type": "object", "properties": {"a": {"type": "date"}}},
    ],
)
def test_other_keywords_fall_back_to_fastjsonschema(schema: dict[str, Any]) -> None:
    assert quick_check(schema) is None


def test_validator_uses_fastjsonschema_verdict_and_message() -> None:
    validator = CompiledValidator(PROFILE_SCHEMA)
    validator.validate({"crmID": "1", "age": 1.0})  # quick check unsure, fastjsonschema accepts
    with pytest.raises(InvalidRecord, match=r"age does not match the stream schema"):
        validator.validate({"crmID": "1", "age": "one"})


def test_deep_schemas_fall_back_instead_of_recursing_forever() -> None:
    schema: dict[str, Any] = {"type": "string"}
    for _ in range(40):
        schema = {"type": "object", "properties": {"a": schema}}
    assert quick_check(schema) is None
    record: Any = "x"
    for _ in range(40):
        record = {"a": record}
    CompiledValidator(schema).validate(record)


def test_every_combination_of_two_values_in_the_open_map() -> None:
    quick = quick_check(PROFILE_SCHEMA)
    full = fastjsonschema.compile(PROFILE_SCHEMA, use_formats=False)
    assert quick is not None
    for first, second in itertools.product(VALUES, repeat=2):
        record = {"crmID": "x", "segmentMembership": {"ups": {"a": first, "b": second}}}
        if quick(record):
            assert _fast_verdict(full, record)
