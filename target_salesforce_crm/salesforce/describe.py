"""Field specs from a describe response, and the Salesforce field-type sets built on them.

One place for what a describe says about a field, so mapping (how to serialize a value) and
pre-flight (whether a field can be written at all) read the same facts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

TEXT_TYPES = frozenset(
    {"string", "textarea", "email", "phone", "url", "picklist", "multipicklist", "combobox",
     "reference", "encryptedstring"}
)
INTEGER_TYPES = frozenset({"int", "long"})
NUMBER_TYPES = frozenset({"double", "currency", "percent"})
TEMPORAL_TYPES = frozenset({"date", "datetime"})
WRITABLE_TYPES = TEXT_TYPES | INTEGER_TYPES | NUMBER_TYPES | TEMPORAL_TYPES | {"boolean"}


@dataclass(frozen=True)
class FieldSpec:
    """What a writer needs to know about one Salesforce field."""

    name: str
    type: str
    length: int
    createable: bool
    updateable: bool
    required_on_create: bool
    external_id: bool
    case_sensitive: bool
    html_formatted: bool
    picklist_values: tuple[str, ...] = ()  # active values only
    restricted_picklist: bool = False

    @classmethod
    def from_describe(cls, field: dict[str, Any]) -> FieldSpec:
        return cls(
            name=field["name"],
            type=str(field.get("type", "string")),
            length=int(field.get("length") or 0),
            createable=bool(field.get("createable")),
            updateable=bool(field.get("updateable")),
            required_on_create=bool(field.get("createable"))
            and not field.get("nillable", True)
            and not field.get("defaultedOnCreate", False),
            external_id=bool(field.get("externalId")) or (
                bool(field.get("idLookup")) and field.get("type") != "id"
            ),
            case_sensitive=bool(field.get("caseSensitive")),
            html_formatted=bool(field.get("htmlFormatted"))
            or str(field.get("extraTypeInfo") or "").lower() == "richtextarea",
            picklist_values=tuple(
                str(value["value"]) for value in field.get("picklistValues") or ()
                if isinstance(value, dict) and value.get("active", True)
                and value.get("value") is not None
            ),
            restricted_picklist=bool(field.get("restrictedPicklist")),
        )


def field_specs(describe: dict[str, Any]) -> dict[str, FieldSpec]:
    """An object's fields by lower-case API name (Salesforce names are case-insensitive)."""
    return {f["name"].lower(): FieldSpec.from_describe(f) for f in describe.get("fields", [])}
