"""Describe metadata for Contact and Lead, plus the configurable segment fields.

Each field is kept twice: as a full DescribeSObjectResult field dict (what the
describe endpoint returns) and as a compact `FieldSpec` the validator reads on
every record, so the hot path never digs through describe dicts.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

_TEXT_TYPES = frozenset({"string", "textarea", "email", "phone", "url", "picklist"})
_SOAP_TYPES = {
    "id": "tns:ID",
    "boolean": "xsd:boolean",
    "date": "xsd:date",
    "datetime": "xsd:dateTime",
    "double": "xsd:double",
}
_SEGMENT_NAME = re.compile(r"^[A-Za-z](?:[A-Za-z0-9]|_(?!_))*__c$")
_LONG_TEXT_LENGTH = 32768
_TIER_FORMULA = "IF(Loyalty_Score__c >= 80, 'Gold', 'Standard')"


@dataclass(slots=True)
class FieldSpec:
    """What the record validator needs to know about one field."""

    name: str
    label: str
    type: str
    length: int
    createable: bool
    updateable: bool
    nillable: bool
    defaulted_on_create: bool
    external_id: bool
    unique: bool
    case_sensitive: bool
    picklist: tuple[str, ...]
    restricted: bool
    default_value: Any
    describe: dict[str, Any] = field(repr=False)
    plain_text: bool = False

    @property
    def required_on_create(self) -> bool:
        return self.createable and not self.nillable and not self.defaulted_on_create


@dataclass(slots=True)
class SObjectSchema:
    """One object's describe result and its case-insensitive field index."""

    name: str
    label: str
    label_plural: str
    key_prefix: str
    fields: list[FieldSpec]
    by_lower: dict[str, FieldSpec]
    by_name: dict[str, FieldSpec]
    required: tuple[FieldSpec, ...]
    unique: tuple[FieldSpec, ...]
    unique_names: frozenset[str]
    createable_names: frozenset[str]
    updateable_names: frozenset[str]
    describe_body: bytes
    plans: dict[tuple[str, ...], Any] = field(default_factory=dict, repr=False)  # see prepare
    compound_name: bool = True  # Name follows FirstName/LastName (Contact, Lead)

    def field(self, name: str) -> FieldSpec | None:
        return self.by_lower.get(name.lower())

    def external_id_fields(self) -> list[FieldSpec]:
        return [spec for spec in self.fields if spec.external_id]


def _field(
    name: str,
    label: str,
    ftype: str,
    length: int = 0,
    *,
    createable: bool = True,
    updateable: bool = True,
    nillable: bool = True,
    defaulted: bool = False,
    custom: bool = False,
    external_id: bool = False,
    id_lookup: bool = False,
    unique: bool = False,
    calculated: bool = False,
    html: bool = False,
    extra: str | None = None,
    picklist: tuple[str, ...] = (),
    restricted: bool = False,
    default: Any = None,
) -> FieldSpec:
    text = ftype in _TEXT_TYPES
    if ftype == "id":
        byte_length = 18
    elif text:
        byte_length = length * 3
    else:
        byte_length = 0
    describe: dict[str, Any] = {
        "name": name,
        "label": label,
        "type": ftype,
        "length": length,
        "byteLength": byte_length,
        "precision": 18 if ftype == "double" else 0,
        "scale": 2 if ftype == "double" else 0,
        "digits": 0,
        "createable": createable,
        "updateable": updateable,
        "nillable": nillable,
        "defaultedOnCreate": defaulted,
        "defaultValue": default,
        "externalId": external_id,
        "idLookup": id_lookup,
        "unique": unique,
        "caseSensitive": False,
        "calculated": calculated,
        "calculatedFormula": _TIER_FORMULA if calculated else None,
        "custom": custom,
        "htmlFormatted": html,
        "extraTypeInfo": extra,
        "soapType": _SOAP_TYPES.get(ftype, "xsd:string"),
        "picklistValues": [
            {"active": True, "defaultValue": value == default, "label": value, "validFor": None,
             "value": value}
            for value in picklist
        ],
        "restrictedPicklist": restricted,
        "filterable": ftype != "textarea" or length <= 255,
        "sortable": ftype != "textarea" or length <= 255,
        "groupable": ftype not in {"textarea", "double", "datetime"},
        "nameField": name == "Name",
        "autoNumber": False,
        "encrypted": False,
        "deprecatedAndHidden": False,
        "dependentPicklist": False,
        "referenceTo": [],
        "relationshipName": None,
        "inlineHelpText": None,
    }
    return FieldSpec(
        name=name, label=label, type=ftype, length=length, createable=createable,
        updateable=updateable, nillable=nillable, defaulted_on_create=defaulted,
        external_id=external_id, unique=unique, case_sensitive=False, picklist=picklist,
        restricted=restricted, default_value=default, describe=describe,
        plain_text=text and ftype != "email" and not restricted,
    )


def _reference(name: str, label: str, targets: Iterable[str], *, createable: bool = False,
               updateable: bool = False, nillable: bool = True) -> FieldSpec:
    """A lookup field (an 18-character Id of one of `targets`)."""
    spec = _field(name, label, "reference", 18, createable=createable, updateable=updateable,
                  nillable=nillable)
    relationship = name[:-2] if name.endswith("Id") else None
    spec.describe.update(referenceTo=list(targets), relationshipName=relationship, byteLength=18)
    return spec


def lifecycle_fields(object_name: str) -> list[FieldSpec]:
    """IsDeleted and MasterRecordId: set when a record is deleted or loses a merge (§2.3)."""
    return [
        _field("IsDeleted", "Deleted", "boolean", createable=False, updateable=False,
               nillable=False, defaulted=True, default=False),
        _reference("MasterRecordId", "Master Record ID", [object_name]),
    ]


def _conversion_fields() -> list[FieldSpec]:
    """A Lead's conversion outcome (§2.1); only IsConverted may be given on create."""
    return [
        _field("IsConverted", "Converted", "boolean", updateable=False, nillable=False,
               defaulted=True, default=False),
        _field("ConvertedDate", "Converted Date", "date", createable=False, updateable=False),
        _reference("ConvertedAccountId", "Converted Account ID", ["Account"]),
        _reference("ConvertedContactId", "Converted Contact ID", ["Contact"]),
        _reference("ConvertedOpportunityId", "Converted Opportunity ID", ["Opportunity"]),
    ]


def _system_fields() -> list[FieldSpec]:
    return [
        _field("Id", "Record ID", "id", 18, createable=False, updateable=False, nillable=False,
               defaulted=True, id_lookup=True),
    ]


def _audit_fields() -> list[FieldSpec]:
    return [
        _field("Name", "Full Name", "string", 121, createable=False, updateable=False,
               nillable=False, extra="personname"),
        _field("CreatedDate", "Created Date", "datetime", createable=False, updateable=False,
               nillable=False, defaulted=True),
        _field("LastModifiedDate", "Last Modified Date", "datetime", createable=False,
               updateable=False, nillable=False, defaulted=True),
    ]


SEGMENT_KINDS = ("textarea", "checkbox", "picklist")
Segment = tuple[str, str, tuple[str, ...]]  # API name, kind, picklist values


def _segment_field(name: str, kind: str, values: tuple[str, ...]) -> FieldSpec:
    """A segment field as the org would describe it (contract part 2, §4)."""
    label = name[: -len("__c")].replace("_", " ")
    if kind == "checkbox":
        return _field(name, label, "boolean", custom=True, nillable=False, defaulted=True,
                      default=False)
    if kind == "picklist":
        return _field(name, label, "picklist", 255, custom=True, picklist=values,
                      restricted=True)
    return _field(name, label, "textarea", _LONG_TEXT_LENGTH, custom=True,
                  extra="plaintextarea")


def parse_segment_field(text: str) -> Segment:
    """`NAME` or `NAME:textarea` (Text Area (Long)), `NAME:checkbox`, or
    `NAME:picklist=a|b|c` (a restricted picklist of those values)."""
    name, _, kind_text = text.partition(":")
    kind, has_values, values_text = kind_text.partition("=")
    kind = kind.strip().lower() or "textarea"
    values = tuple(value.strip() for value in values_text.split("|") if value.strip())
    if kind not in SEGMENT_KINDS:
        raise ValueError(f"segment field kind must be one of {', '.join(SEGMENT_KINDS)}: "
                         f"{text!r}")
    if (kind == "picklist") != bool(values) or (has_values and kind != "picklist"):
        raise ValueError(f"only a picklist segment field takes values, as "
                         f"NAME:picklist=a|b|c: {text!r}")
    return name.strip(), kind, values


def _custom_fields(segment_fields: Iterable[Segment]) -> list[FieldSpec]:
    fields = [
        _field("External_Id__c", "External Id", "string", 255, custom=True, external_id=True,
               id_lookup=True, unique=True),
        _field("Loyalty_Score__c", "Loyalty Score", "double", custom=True),
        _field("Short_Note__c", "Short Note", "textarea", 255, custom=True,
               extra="plaintextarea"),
        _field("Rich_Note__c", "Rich Note", "textarea", _LONG_TEXT_LENGTH, custom=True,
               html=True, extra="richtextarea"),
        _field("Formula_Tier__c", "Formula Tier", "string", 1300, custom=True,
               createable=False, updateable=False, calculated=True),
    ]
    fields += [_segment_field(*segment) for segment in segment_fields]
    return fields


def _contact_fields() -> list[FieldSpec]:
    salutations = ("Mr.", "Ms.", "Mrs.", "Dr.", "Prof.", "Mx.")
    return [
        *_system_fields(),
        _field("LastName", "Last Name", "string", 80, nillable=False, extra="personname"),
        _field("FirstName", "First Name", "string", 40, extra="personname"),
        _field("Salutation", "Salutation", "picklist", 40, extra="personname",
               picklist=salutations),
        _field("Email", "Email", "email", 80, id_lookup=True),
        _field("Phone", "Business Phone", "phone", 40),
        _field("MobilePhone", "Mobile Phone", "phone", 40),
        _field("Title", "Title", "string", 128),
        _field("Department", "Department", "string", 80),
        _field("Description", "Contact Description", "textarea", 32000),
        _field("MailingStreet", "Mailing Street", "textarea", 255, extra="plaintextarea"),
        _field("MailingCity", "Mailing City", "string", 40),
        _field("MailingState", "Mailing State/Province", "string", 80),
        _field("MailingPostalCode", "Mailing Zip/Postal Code", "string", 20),
        _field("MailingCountry", "Mailing Country", "string", 80),
        _field("Birthdate", "Birthdate", "date"),
        _field("HasOptedOutOfEmail", "Email Opt Out", "boolean", nillable=False, defaulted=True,
               default=False),
        *lifecycle_fields("Contact"),
        *_audit_fields(),
    ]


def _lead_fields() -> list[FieldSpec]:
    statuses = ("Open - Not Contacted", "Working - Contacted", "Closed - Converted",
                "Closed - Not Converted")
    return [
        *_system_fields(),
        _field("LastName", "Last Name", "string", 80, nillable=False, extra="personname"),
        _field("FirstName", "First Name", "string", 40, extra="personname"),
        _field("Company", "Company", "string", 255, nillable=False),
        _field("Email", "Email", "email", 80, id_lookup=True),
        _field("Phone", "Phone", "phone", 40),
        _field("Title", "Title", "string", 128),
        _field("Street", "Street", "textarea", 255, extra="plaintextarea"),
        _field("City", "City", "string", 40),
        _field("State", "State/Province", "string", 80),
        _field("PostalCode", "Zip/Postal Code", "string", 20),
        _field("Country", "Country", "string", 80),
        _field("Description", "Description", "textarea", 32000),
        _field("Status", "Lead Status", "picklist", 40, nillable=False, defaulted=True,
               picklist=statuses, restricted=True, default=statuses[0]),
        *lifecycle_fields("Lead"),
        *_conversion_fields(),
        *_audit_fields(),
    ]


def _build(name: str, label: str, plural: str, prefix: str,
           fields: list[FieldSpec], *, compound_name: bool = True) -> SObjectSchema:
    describe = {
        "name": name,
        "label": label,
        "labelPlural": plural,
        "keyPrefix": prefix,
        "custom": False,
        "createable": True,
        "updateable": True,
        "deletable": True,
        "queryable": True,
        "fields": [spec.describe for spec in fields],
        "recordTypeInfos": [],
        "childRelationships": [],
        "urls": {
            "sobject": f"/services/data/v67.0/sobjects/{name}",
            "describe": f"/services/data/v67.0/sobjects/{name}/describe",
            "rowTemplate": f"/services/data/v67.0/sobjects/{name}/{{ID}}",
        },
    }
    return SObjectSchema(
        name=name, label=label, label_plural=plural, key_prefix=prefix, fields=fields,
        by_lower={spec.name.lower(): spec for spec in fields},
        by_name={**{spec.name.lower(): spec for spec in fields},
                 **{spec.name: spec for spec in fields}},
        required=tuple(spec for spec in fields if spec.required_on_create),
        unique=tuple(spec for spec in fields if spec.unique),
        unique_names=frozenset(spec.name for spec in fields if spec.unique),
        createable_names=frozenset(spec.name for spec in fields if spec.createable),
        updateable_names=frozenset(spec.name for spec in fields if spec.updateable),
        describe_body=json.dumps(describe).encode(),
        compound_name=compound_name,
    )


def check_segment_fields(specs: Iterable[str]) -> list[Segment]:
    """Validate segment fields (see `parse_segment_field`); an org only allows `Name__c`
    style custom fields."""
    result: list[Segment] = []
    reserved = {spec.name.lower() for spec in (*_contact_fields(), *_lead_fields(),
                                               *_custom_fields(()))}
    for text in specs:
        if not isinstance(text, str):
            raise ValueError(f"segment field must be a string: {text!r}")
        segment = parse_segment_field(text)
        name = segment[0]
        if not _SEGMENT_NAME.match(name):
            raise ValueError(f"segment field must be a custom field API name like Seg_X__c: "
                             f"{name!r}")
        if name.lower() in reserved or name.lower() in {s[0].lower() for s in result}:
            raise ValueError(f"segment field clashes with an existing field: {name}")
        result.append(segment)
    return result


def build_schemas(segment_fields: Iterable[str]) -> dict[str, SObjectSchema]:
    """Return the org's objects keyed by API name."""
    segments = check_segment_fields(segment_fields)
    return {
        "Contact": _build("Contact", "Contact", "Contacts", "003",
                          _contact_fields() + _custom_fields(segments)),
        "Lead": _build("Lead", "Lead", "Leads", "00Q", _lead_fields() + _custom_fields(segments)),
    }


# for the modules that describe further objects (objects.py) and fields (tooling.py)
make_field = _field
make_reference = _reference
build_object = _build
