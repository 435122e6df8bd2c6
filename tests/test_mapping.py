"""Unit tests for mapping.py (RecordMapper, Path) and preflight.py (FieldSpec, check_fields).

SPEC §3 (paths, serialization, Ids, pre-flight) and the wire contract §5.1/§5.2 (describe).
"""

from __future__ import annotations

import datetime
import decimal
import json
from typing import Any

import pytest
from singer_sdk.helpers._flattening import (  # the SDK's own flattening, to map its output
    flatten_key,
    flatten_record,
    flatten_schema,
)

from target_salesforce_crm.mapping import Path, RecordMapper
from target_salesforce_crm.paths import Flattening, flattening_problems
from target_salesforce_crm.preflight import check_fields
from target_salesforce_crm.rejections import RecordRejected, Rejection
from target_salesforce_crm.salesforce.describe import FieldSpec
from target_salesforce_crm.salesforce.errors import ConfigError
from target_salesforce_crm.settings import parse_settings

CONTACT_15 = "003A0000006Vm9r"
CONTACT_18 = "003A0000006Vm9rIAC"
LEAD_18 = "00QA0000006Vm9rMAC"


# --------------------------------------------------------------------------- describe fixtures


def fld(
    name: str,
    type_: str = "string",
    length: int | None = 255,
    *,
    createable: bool = True,
    updateable: bool = True,
    nillable: bool = True,
    defaulted: bool = False,
    external_id: bool = False,
    id_lookup: bool = False,
    case_sensitive: bool = False,
    html: bool = False,
    extra: str | None = None,
) -> dict[str, Any]:
    """A describe field with the keys of contract §5.1."""
    return {
        "name": name,
        "type": type_,
        "length": length,
        "createable": createable,
        "updateable": updateable,
        "nillable": nillable,
        "defaultedOnCreate": defaulted,
        "externalId": external_id,
        "idLookup": id_lookup,
        "caseSensitive": case_sensitive,
        "htmlFormatted": html,
        "extraTypeInfo": extra,
    }


def common_fields() -> list[dict[str, Any]]:
    return [
        fld("Id", "id", 18, createable=False, updateable=False, nillable=False, defaulted=True,
            id_lookup=True),
        fld("LastName", "string", 80, nillable=False),
        fld("FirstName", "string", 40),
        fld("Email", "email", 80, id_lookup=True),
        fld("Title", "string", 128),
        fld("Description", "textarea", 32000, extra="plaintextarea"),
        fld("Birthdate", "date", 0),
        fld("Last_Seen__c", "datetime", 0),
        fld("Score__c", "double", 0),
        fld("Visits__c", "int", 0),
        fld("Opt_In__c", "boolean", 0, nillable=False, defaulted=True),
        fld("Interests__c", "multipicklist", 4099),
        fld("OwnerId", "reference", 18, nillable=False, defaulted=True),
        fld("Ext_Id__c", "string", 50, external_id=True, id_lookup=True),
        fld("Ext_Key_CS__c", "string", 50, external_id=True, id_lookup=True,
            case_sensitive=True),
        fld("Plain_Text__c", "string", 50),
        fld("Tags__c", "picklist", 255),
        fld("Seg_A__c", "textarea", 32768, extra="plaintextarea"),
        fld("Seg_B__c", "textarea", 32768, extra="plaintextarea"),
        fld("Seg_Short__c", "textarea", 5, extra="plaintextarea"),
        fld("Seg_Rich__c", "textarea", 32768, html=True, extra="richtextarea"),
        fld("Seg_Rich_Mixed_Case__c", "textarea", 32768, extra="RichTextArea"),
        fld("Seg_Readonly__c", "textarea", 32768, createable=False, updateable=False,
            extra="plaintextarea"),
        fld("Update_Only__c", "string", 50, createable=False),
        fld("Formula__c", "string", 50, createable=False, updateable=False),
        fld("MailingAddress", "address", 0, createable=False, updateable=False),
        fld("Location__c", "location", 0),
    ]


def describe(object_type: str = "Contact") -> dict[str, Any]:
    fields = common_fields()
    if object_type == "Lead":
        fields.append(fld("Company", "string", 255, nillable=False))
    return {"name": object_type, "keyPrefix": "003" if object_type == "Contact" else "00Q",
            "fields": fields}


BASE_CONFIG: dict[str, Any] = {
    "domain": "acme",
    "username": "u@example.com",
    "password": "pw",
    "client_id": "ck",
    "client_secret": "cs",
}


def make_settings(**overrides: Any) -> Any:
    return parse_settings({**BASE_CONFIG, **overrides})


def mapper(object_type: str = "Contact", **overrides: Any) -> RecordMapper:
    settings = make_settings(**overrides)
    fields = check_fields(settings, object_type, describe(object_type))
    return RecordMapper(settings, object_type, fields)


def mapping(*pairs: tuple[str, str]) -> list[dict[str, str]]:
    return [{"source": s, "target": t} for s, t in pairs]


def rejection_of(m: RecordMapper, record: dict[str, Any]) -> Rejection:
    with pytest.raises(RecordRejected) as info:
        m.map(record)
    assert str(info.value) == info.value.rejection.message
    return info.value.rejection


def profile(**extra: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "crmID": CONTACT_15,
        "person": {"name": {"lastName": "Lovelace", "firstName": "Ada"}},
        "personalEmail": {"address": "ada@example.com"},
    }
    record.update(extra)
    return record


# --------------------------------------------------------------------------- Path


def test_path_walks_nested_objects() -> None:
    assert Path("a.b.c").get({"a": {"b": {"c": 1}}}) == 1
    assert Path("a").get({"a": "x"}) == "x"


def test_path_tries_a_literal_dotted_key_first() -> None:
    record = {"a.b": "literal", "a": {"b": "nested"}}
    assert Path("a.b").get(record) == "literal"


def test_path_falls_back_to_a_flattened_key() -> None:
    assert Path("a.b.c").get({"a__b__c": "flat"}) == "flat"
    # a flattened key also works when the walk stops at a non-object
    assert Path("a.b.c").get({"a": "scalar", "a__b__c": "flat"}) == "flat"


def test_path_source_written_as_a_flattened_key() -> None:
    record = {"person__name__lastName": "Hopper"}
    assert Path("person__name__lastName").get(record) == "Hopper"


@pytest.mark.parametrize(
    "record",
    [{}, {"a": None}, {"a": {"b": {}}}, {"a": [1, 2]}, {"a": {"b": "scalar"}}],
)
def test_path_absent_value_is_none(record: dict[str, Any]) -> None:
    assert Path("a.b.c").get(record) is None


def test_path_keeps_falsy_values() -> None:
    assert Path("a.b").get({"a": {"b": 0}}) == 0
    assert Path("a.b").get({"a": {"b": False}}) is False
    assert Path("a.b").get({"a": {"b": ""}}) == ""


# --------------------------------------------------------------------------- basic update mapping


def test_reference_contact_mapping_by_id() -> None:
    mapped = mapper().map(profile())
    assert mapped.key == CONTACT_18
    assert mapped.payload == {
        "attributes": {"type": "Contact"},
        "id": CONTACT_18,
        "LastName": "Lovelace",
        "FirstName": "Ada",
        "Email": "ada@example.com",
    }


def test_reference_lead_mapping() -> None:
    m = mapper("Lead", salesforce_id_type="Lead")
    mapped = m.map(
        {
            "crmID": LEAD_18.lower(),
            "person": {"name": {"lastName": "Hopper"}},
            "b2b": {"companyName": "Navy"},
        }
    )
    assert mapped.payload == {
        "attributes": {"type": "Lead"},
        "id": LEAD_18,
        "LastName": "Hopper",
        "Company": "Navy",
    }


def test_flattened_record_keys_are_found() -> None:
    record = {
        "crmID": CONTACT_15,
        "person__name__lastName": "Lovelace",
        "personalEmail__address": "ada@example.com",
    }
    payload = mapper().map(record).payload
    assert payload["LastName"] == "Lovelace"
    assert payload["Email"] == "ada@example.com"


@pytest.mark.parametrize("value", [None, "absent"])
def test_absent_or_null_values_are_not_written(value: str | None) -> None:
    record = profile()
    if value is None:
        record["person"]["name"]["firstName"] = None
    else:
        del record["person"]["name"]["firstName"]
    del record["personalEmail"]
    payload = mapper().map(record).payload
    assert "FirstName" not in payload
    assert "Email" not in payload
    assert payload["LastName"] == "Lovelace"


def test_custom_id_source() -> None:
    mapped = mapper(id_source="ids.sf").map({"ids": {"sf": CONTACT_15}})
    assert mapped.payload == {"attributes": {"type": "Contact"}, "id": CONTACT_18}


@pytest.mark.parametrize(
    ("crm_id", "code"),
    [
        (None, "MISSING_ID"),
        ("", "MISSING_ID"),
        ("003-bad", "MALFORMED_ID"),
        ("003A0000006Vm9rIAD", "MALFORMED_ID"),
        (LEAD_18, "WRONG_OBJECT_ID"),
    ],
)
def test_bad_or_missing_id_rejected(crm_id: str | None, code: str) -> None:
    record = profile(crmID=crm_id)
    rejection = rejection_of(mapper(), record)
    assert rejection.code == code
    assert rejection.fields == ("Id",)


# --------------------------------------------------------------------------- serialization


def typed_mapper(**overrides: Any) -> RecordMapper:
    return mapper(
        field_mappings=mapping(
            ("v.title", "Title"),
            ("v.score", "Score__c"),
            ("v.visits", "Visits__c"),
            ("v.birth", "Birthdate"),
            ("v.seen", "Last_Seen__c"),
            ("v.opt", "Opt_In__c"),
            ("v.desc", "Description"),
        ),
        **overrides,
    )


def typed(**values: Any) -> dict[str, Any]:
    return typed_mapper().map({"crmID": CONTACT_15, "v": values}).payload


def test_decimal_into_number_fields_is_a_json_number() -> None:
    payload = typed(score=decimal.Decimal("12.5"), visits=decimal.Decimal("3"))
    assert payload["Score__c"] == 12.5
    assert isinstance(payload["Score__c"], float)
    assert payload["Visits__c"] == 3
    assert isinstance(payload["Visits__c"], int)
    body = json.loads(json.dumps(payload))
    assert body["Score__c"] == 12.5
    assert body["Visits__c"] == 3


def test_integral_decimal_into_double_is_an_integer() -> None:
    assert typed(score=decimal.Decimal("7.000"))["Score__c"] == 7
    assert json.dumps(typed(score=decimal.Decimal("7.000"))["Score__c"]) == "7"


def test_numeric_strings_into_number_fields() -> None:
    payload = typed(score="2.25", visits="42")
    assert payload["Score__c"] == 2.25
    assert payload["Visits__c"] == 42


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"visits": decimal.Decimal("2.5")}, "Visits__c"),
        ({"visits": "many"}, "Visits__c"),
        ({"visits": True}, "Visits__c"),
        ({"score": "lots"}, "Score__c"),
        ({"score": True}, "Score__c"),
        ({"opt": "yes"}, "Opt_In__c"),
        ({"opt": 1}, "Opt_In__c"),
        ({"birth": "not a date"}, "Birthdate"),
        ({"seen": "yesterday"}, "Last_Seen__c"),
    ],
)
def test_values_of_the_wrong_type_rejected(values: dict[str, Any], field: str) -> None:
    rejection = rejection_of(typed_mapper(), {"crmID": CONTACT_15, "v": values})
    assert rejection.code == "INVALID_FIELD_VALUE"
    assert rejection.fields == (field,)
    for value in values.values():
        if isinstance(value, str):
            assert value not in rejection.message


@pytest.mark.parametrize("value", [float("nan"), decimal.Decimal("NaN"), "NaN"])
def test_not_a_number_rejected(value: Any) -> None:
    rejection = rejection_of(typed_mapper(), {"crmID": CONTACT_15, "v": {"score": value}})
    assert rejection.code == "INVALID_FIELD_VALUE"


NON_FINITE = [float("nan"), float("inf"), float("-inf"), decimal.Decimal("NaN"),
              decimal.Decimal("sNaN"), decimal.Decimal("Infinity"), decimal.Decimal("-Infinity")]


@pytest.mark.parametrize("value", NON_FINITE, ids=str)
@pytest.mark.parametrize(
    ("key", "field"),
    [("title", "Title"), ("desc", "Description"), ("score", "Score__c"),
     ("visits", "Visits__c"), ("opt", "Opt_In__c"), ("birth", "Birthdate"),
     ("seen", "Last_Seen__c")],
)
def test_nan_and_infinity_rejected_for_every_field_type(value: Any, key: str, field: str) -> None:
    rejection = rejection_of(typed_mapper(), {"crmID": CONTACT_15, "v": {key: value}})
    assert rejection.code == "INVALID_FIELD_VALUE"
    assert rejection.fields == (field,)
    assert field in rejection.message


def test_nan_in_a_multipicklist_list_rejected() -> None:
    m = mapper(field_mappings=mapping(("tags", "Interests__c")))
    rejection = rejection_of(m, profile(tags=["a", float("inf")]))
    assert (rejection.code, rejection.fields) == ("INVALID_FIELD_VALUE", ("Interests__c",))


def test_nan_text_and_finite_numbers_into_text_stay_text() -> None:
    assert typed(title="NaN")["Title"] == "NaN"  # the word is text someone wrote
    assert typed(title=decimal.Decimal("1.50"))["Title"] == "1.50"
    assert typed(title=2.5)["Title"] == "2.5"


def test_booleans() -> None:
    assert typed(opt=True)["Opt_In__c"] is True
    assert typed(opt="FALSE")["Opt_In__c"] is False


def test_aware_datetime_is_iso_8601_with_its_offset() -> None:
    tz = datetime.timezone(datetime.timedelta(hours=2))
    value = datetime.datetime(2024, 5, 1, 10, 30, 15, tzinfo=tz)
    assert typed(seen=value)["Last_Seen__c"] == "2024-05-01T10:30:15+02:00"


def test_naive_datetime_is_treated_as_utc() -> None:
    value = datetime.datetime(2024, 5, 1, 10, 30, 15)
    assert typed(seen=value)["Last_Seen__c"] == "2024-05-01T10:30:15+00:00"


def test_datetime_strings_normalized() -> None:
    assert typed(seen="2024-05-01T10:30:00Z")["Last_Seen__c"] == "2024-05-01T10:30:00+00:00"
    assert typed(seen="2024-05-01T10:30:00")["Last_Seen__c"] == "2024-05-01T10:30:00+00:00"


def test_dates_are_yyyy_mm_dd() -> None:
    assert typed(birth=datetime.date(1815, 12, 10))["Birthdate"] == "1815-12-10"
    assert typed(birth="1815-12-10T00:00:00Z")["Birthdate"] == "1815-12-10"
    stamp = datetime.datetime(1815, 12, 10, 23, 0, tzinfo=datetime.timezone.utc)
    assert typed(birth=stamp)["Birthdate"] == "1815-12-10"


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (42, "42"),
        (1.5, "1.5"),
        (decimal.Decimal("12.50"), "12.50"),
        (decimal.Decimal("1E+2"), "100"),
        (True, "true"),
        (False, "false"),
        (datetime.date(2024, 1, 2), "2024-01-02"),
        (datetime.datetime(2024, 1, 2, 3, 4, 5), "2024-01-02T03:04:05+00:00"),
    ],
)
def test_non_strings_into_text_fields_become_strings(value: Any, text: str) -> None:
    payload = typed(title=value)
    assert payload["Title"] == text
    assert isinstance(payload["Title"], str)


@pytest.mark.parametrize("value", [{"secret": "payload-value"}, ["payload-value"]])
def test_objects_and_lists_into_text_fields_rejected(value: Any) -> None:
    rejection = rejection_of(typed_mapper(), {"crmID": CONTACT_15, "v": {"title": value}})
    assert rejection.code == "INVALID_FIELD_VALUE"
    assert rejection.fields == ("Title",)
    assert "payload-value" not in rejection.message


def test_list_into_multipicklist_is_joined_with_semicolons() -> None:
    m = mapper(field_mappings=mapping(("interests", "Interests__c")))
    payload = m.map({"crmID": CONTACT_15, "interests": ["Chess", "Go"]}).payload
    assert payload["Interests__c"] == "Chess;Go"


# --------------------------------------------------------------------------- lengths and emails


LONG_NAME = "Wolfeschlegelsteinhausenbergerdorff-Zeta-Omega"  # 46 characters > FirstName 40


def test_truncate_policy_cuts_to_the_field_length_and_counts() -> None:
    m = mapper()
    record = profile()
    record["person"]["name"]["firstName"] = LONG_NAME
    payload = m.map(record).payload
    assert payload["FirstName"] == LONG_NAME[:40]
    assert m.truncated == {"FirstName": 1}
    m.map(record)
    assert m.truncated == {"FirstName": 2}


def test_value_exactly_at_the_length_is_kept() -> None:
    m = mapper(string_overflow="reject")
    record = profile()
    record["person"]["name"]["firstName"] = "x" * 40
    assert m.map(record).payload["FirstName"] == "x" * 40
    assert m.truncated == {}


def test_reject_policy_rejects_over_long_strings() -> None:
    m = mapper(string_overflow="reject")
    record = profile()
    record["person"]["name"]["firstName"] = LONG_NAME
    rejection = rejection_of(m, record)
    assert rejection.code == "STRING_TOO_LONG"
    assert rejection.fields == ("FirstName",)
    assert "46" in rejection.message
    assert "40" in rejection.message
    assert LONG_NAME not in rejection.message
    assert LONG_NAME[:40] not in rejection.message
    assert m.truncated == {}


EMOJI = "\U0001f600"  # one character, a surrogate pair: two UTF-16 units for Salesforce
CJK_B = "\U00020000"  # CJK Extension B: also beyond the Basic Multilingual Plane


def first_name_after(name: str, policy: str = "truncate") -> str:
    record = profile()
    record["person"]["name"]["firstName"] = name
    return str(mapper(string_overflow=policy).map(record).payload["FirstName"])


@pytest.mark.parametrize("policy", ["truncate", "reject"])
def test_surrogate_pairs_exactly_at_the_length_are_kept(policy: str) -> None:
    assert first_name_after(EMOJI * 20, policy) == EMOJI * 20  # 40 units in 40
    assert first_name_after("a" * 38 + CJK_B, policy) == "a" * 38 + CJK_B
    assert first_name_after("é" * 40, policy) == "é" * 40  # in the BMP: one unit each


@pytest.mark.parametrize(
    ("name", "kept"),
    [("a" * 39 + EMOJI, "a" * 39),  # 41 units: the pair is not cut in half, it is dropped
     (EMOJI * 21, EMOJI * 20),
     ("é" * 30 + EMOJI * 6, "é" * 30 + EMOJI * 5),
     ("a" * 39 + EMOJI + "b", "a" * 39),
     ("a" * 39 + "éb", "a" * 39 + "é")],
)
def test_truncate_counts_utf16_units_and_never_splits_a_pair(name: str, kept: str) -> None:
    assert first_name_after(name) == kept
    assert len(kept.encode("utf-16-le")) // 2 <= 40


@pytest.mark.parametrize("name", ["a" * 39 + EMOJI, EMOJI * 21, CJK_B * 21])
def test_reject_counts_utf16_units(name: str) -> None:
    record = profile()
    record["person"]["name"]["firstName"] = name
    rejection = rejection_of(mapper(string_overflow="reject"), record)
    assert (rejection.code, rejection.fields) == ("STRING_TOO_LONG", ("FirstName",))
    assert str(len(name.encode("utf-16-le")) // 2) in rejection.message


@pytest.mark.parametrize("policy", ["truncate", "reject"])
def test_emails_are_never_truncated(policy: str) -> None:
    long_email = "a" * 70 + "@example.com"  # 82 characters > 80
    m = mapper(string_overflow=policy)
    record = profile(personalEmail={"address": long_email})
    rejection = rejection_of(m, record)
    assert rejection.code == "STRING_TOO_LONG"
    assert rejection.fields == ("Email",)
    assert long_email not in rejection.message
    assert m.truncated == {}


@pytest.mark.parametrize(
    "email", ["not-an-email", "ada@", "@example.com", "ada@example", "ada @example.com",
              "ada@@example.com", "ada@exa_mple.com"]
)
def test_invalid_emails_rejected(email: str) -> None:
    rejection = rejection_of(mapper(), profile(personalEmail={"address": email}))
    assert rejection.code == "INVALID_EMAIL_ADDRESS"
    assert rejection.fields == ("Email",)
    assert email not in rejection.message


@pytest.mark.parametrize(
    "email", ["ada@example.com", "ada.lovelace+crm@mail.example.co.uk", "o'brien@example.ie"]
)
def test_valid_emails_written(email: str) -> None:
    assert mapper().map(profile(personalEmail={"address": email})).payload["Email"] == email


def test_email_with_a_trailing_newline_rejected() -> None:
    rejection = rejection_of(mapper(), profile(personalEmail={"address": "ada@example.com\n"}))
    assert rejection.code == "INVALID_EMAIL_ADDRESS"


def test_empty_required_field_rejected_on_update() -> None:
    record = profile()
    record["person"]["name"]["lastName"] = ""
    rejection = rejection_of(mapper(), record)
    assert rejection.code == "REQUIRED_FIELD_MISSING"
    assert rejection.fields == ("LastName",)
    assert "LastName" in rejection.message


def test_absent_required_field_is_fine_on_update() -> None:
    record = profile()
    del record["person"]["name"]["lastName"]
    payload = mapper().map(record).payload
    assert "LastName" not in payload


def test_empty_optional_field_is_written_on_update() -> None:
    record = profile()
    record["person"]["name"]["firstName"] = ""
    assert mapper().map(record).payload["FirstName"] == ""


# --------------------------------------------------------------------------- segments


SEGMENTS = [
    {"segment_id": "seg-a", "mapping_id": "Seg_A"},
    {"segment_id": "seg-b", "mapping_id": "Seg_B__c"},
]


def with_memberships(memberships: dict[str, Any]) -> dict[str, Any]:
    return profile(segmentMembership={"ups": memberships})


def test_segment_status_written_into_each_mapped_field() -> None:
    m = mapper(segment_mappings=SEGMENTS)
    record = with_memberships(
        {
            "seg-a": {"status": "realized", "lastQualificationTime": "2024-01-01T00:00:00Z"},
            "seg-b": {"status": "existing"},
            "seg-unmapped": {"status": "realized"},
        }
    )
    payload = m.map(record).payload
    assert payload["Seg_A__c"] == "realized"
    assert payload["Seg_B__c"] == "existing"
    assert set(payload) == {
        "attributes", "id", "LastName", "FirstName", "Email", "Seg_A__c", "Seg_B__c",
    }


def test_exited_is_written_as_the_status_not_cleared() -> None:
    m = mapper(segment_mappings=SEGMENTS)
    payload = m.map(with_memberships({"seg-a": {"status": "exited"}})).payload
    assert payload["Seg_A__c"] == "exited"


@pytest.mark.parametrize(
    "memberships",
    [{}, {"seg-a": {}}, {"seg-a": {"status": None}}, {"seg-a": {"status": ""}}],
)
def test_absent_segment_field_not_written(memberships: dict[str, Any]) -> None:
    m = mapper(segment_mappings=SEGMENTS)
    payload = m.map(with_memberships(memberships)).payload
    assert "Seg_A__c" not in payload
    assert "Seg_B__c" not in payload


def test_record_without_memberships_writes_no_segment_field() -> None:
    payload = mapper(segment_mappings=SEGMENTS).map(profile()).payload
    assert "Seg_A__c" not in payload
    assert "Seg_B__c" not in payload


def test_segment_status_values_translation() -> None:
    m = mapper(
        segment_mappings=SEGMENTS,
        segment_status_values={"realized": "Member", "exited": "Left"},
    )
    payload = m.map(
        with_memberships({"seg-a": {"status": "realized"}, "seg-b": {"status": "existing"}})
    ).payload
    assert payload["Seg_A__c"] == "Member"
    assert payload["Seg_B__c"] == "existing"  # untranslated statuses are written as they are
    payload = m.map(with_memberships({"seg-a": {"status": "exited"}})).payload
    assert payload["Seg_A__c"] == "Left"


def test_custom_membership_path() -> None:
    m = mapper(segment_mappings=SEGMENTS, segment_membership_path="audiences")
    payload = m.map(profile(audiences={"seg-b": {"status": "realized"}})).payload
    assert payload["Seg_B__c"] == "realized"


def test_flattened_membership_status_is_found() -> None:
    m = mapper(segment_mappings=SEGMENTS)
    record = profile(**{"segmentMembership__ups__seg-a__status": "realized"})
    assert m.map(record).payload["Seg_A__c"] == "realized"


# --------------------------------------------------------------------------- SDK flattening


def flattened(record: dict[str, Any], depth: int, separator: str = "__") -> dict[str, Any]:
    """``record`` as the SDK hands it to the sink with flattening on (no schema for its
    nested keys: flattened down to ``depth``, JSON text below)."""
    schema = {"type": "object", "properties": {"crmID": {"type": "string"}}}
    return flatten_record(record, flatten_schema(schema, depth, separator), depth, separator)


def flat_mapper(depth: int, separator: str = "__", **overrides: Any) -> RecordMapper:
    settings = make_settings(**overrides)
    fields = check_fields(settings, "Contact", describe())
    return RecordMapper(settings, "Contact", fields,
                        Flattening(separator=separator, max_depth=depth, max_key_length=255))


@pytest.mark.parametrize("depth", [1, 2, 3, 4])
@pytest.mark.parametrize("separator", ["__", "~", "."])
def test_flattened_records_map_as_the_nested_ones(depth: int, separator: str) -> None:
    config: dict[str, Any] = {
        "segment_mappings": SEGMENTS,
        "field_mappings": mapping(("person.name.lastName", "LastName"),
                                  ("personalEmail.address", "Email"), ("v.score", "Score__c"),
                                  ("v.tags", "Interests__c"), ("v.deep.er.title", "Title")),
    }
    record = profile(segmentMembership={"ups": {
        "seg-a": {"status": "realized", "lastQualificationTime": "2024-01-01T00:00:00Z"},
        "seg-b": {"status": "exited"}}},
        v={"score": decimal.Decimal("2.50"), "tags": ["x", "y"], "deep": {"er": {"title": "T"}}})
    expected = mapper(**config).map(record).payload
    assert expected["Seg_A__c"] == "realized" and expected["Interests__c"] == "x;y"
    flat = flattened(record, depth, separator)
    assert flat_mapper(depth, separator, **config).map(flat).payload == expected


def test_flattened_json_text_is_decoded_only_where_the_path_continues() -> None:
    m = flat_mapper(1, field_mappings=mapping(("note", "Title"), ("a.b", "Description")))
    payload = m.map({"crmID": CONTACT_15, "note": '{"b": 1}', "a": '{"b": "inner"}'}).payload
    assert (payload["Title"], payload["Description"]) == ('{"b": 1}', "inner")
    assert "Description" not in m.map({"crmID": CONTACT_15, "a": "{not json"}).payload


def test_flattening_still_reads_a_taps_own_double_underscore_keys() -> None:
    m = flat_mapper(1, separator="~", segment_mappings=SEGMENTS)
    record = profile(**{"segmentMembership__ups__seg-a__status": "existing"})
    assert m.map(record).payload["Seg_A__c"] == "existing"


def test_flattening_from_config_follows_the_sdk() -> None:
    assert Flattening.from_config({}) is None
    assert Flattening.from_config({"flattening_enabled": True, "flattening_max_depth": 0}) is None
    assert Flattening.from_config({"flattening_enabled": False, "flattening_max_depth": 3}) is None
    assert Flattening.from_config({"flattening_enabled": True, "flattening_max_depth": 3}) == (
        Flattening(separator="__", max_depth=3, max_key_length=255))
    assert Flattening.from_config({
        "flattening_enabled": True, "flattening_max_depth": 2, "flattening_separator": ".",
        "flattening_max_key_length": 40}) == Flattening(".", 2, 40)


@pytest.mark.parametrize("max_key_length", [20, 21, 22, 60])
def test_a_key_the_sdk_would_shorten_is_named(max_key_length: int) -> None:
    flattening = Flattening("__", 5, max_key_length)
    parts = ("person", "name", "lastName")  # person__name__lastName: 22 characters
    sdk_key = flatten_key(parts[-1], list(parts[:-1]), "__", max_key_length=max_key_length)
    shortened = flattening.shortened_key(parts)
    assert (shortened is not None) == (sdk_key != "person__name__lastName")


def test_flattening_problems_name_each_unreadable_path() -> None:
    settings = make_settings(segment_mappings=SEGMENTS)
    assert flattening_problems(settings, None) == []
    assert flattening_problems(settings, Flattening("__", 10, 255)) == []
    problems = flattening_problems(settings, Flattening("__", 10, 30))
    assert len(problems) == 2  # the two segment paths; the others are shorter
    assert "segmentMembership.ups.seg-a.status" in problems[0]
    assert "segmentMembership__ups__seg-a__status" in problems[0]
    assert "flattening_max_key_length 30" in problems[0]
    assert flattening_problems(settings, Flattening("__", 1, 30)) == []  # keys stop higher up


def test_non_string_status_rejected() -> None:
    m = mapper(segment_mappings=SEGMENTS)
    rejection = rejection_of(m, with_memberships({"seg-a": {"status": 7}}))
    assert rejection.code == "INVALID_SEGMENT_STATUS"
    assert rejection.fields == ("Seg_A__c",)


# --------------------------------------------------------------------------- upsert


def upsert_mapper(object_type: str = "Contact", **overrides: Any) -> RecordMapper:
    config: dict[str, Any] = {
        "operation": "upsert",
        "external_id_field": "Ext_Id__c",
        "external_id_source": "externalId",
    }
    config.update(overrides)
    return mapper(object_type, **config)


def test_upsert_payload_keyed_by_external_id() -> None:
    mapped = upsert_mapper().map(profile(externalId="CUST-0042", crmID=None))
    assert mapped.key == "cust-0042"  # matching is case-insensitive for this field
    assert mapped.payload == {
        "attributes": {"type": "Contact"},
        "Ext_Id__c": "CUST-0042",
        "LastName": "Lovelace",
        "FirstName": "Ada",
        "Email": "ada@example.com",
    }


def test_upsert_case_sensitive_external_id_keeps_its_case() -> None:
    m = upsert_mapper(external_id_field="Ext_Key_CS__c")
    assert m.map(profile(externalId="CUST-0042")).key == "CUST-0042"


def test_upsert_numeric_external_id_serialized_as_text() -> None:
    mapped = upsert_mapper().map(profile(externalId=42))
    assert mapped.payload["Ext_Id__c"] == "42"
    assert mapped.key == "42"


@pytest.mark.parametrize("value", [None, ""])
def test_upsert_missing_external_id_rejected(value: str | None) -> None:
    record = profile()
    if value is not None:
        record["externalId"] = value
    rejection = rejection_of(upsert_mapper(), record)
    assert rejection.code == "MISSING_EXTERNAL_ID"
    assert rejection.fields == ("Ext_Id__c",)
    assert "externalId" in rejection.message


def test_upsert_required_on_create_fields_enforced() -> None:
    record = profile(externalId="CUST-1")
    del record["person"]["name"]["lastName"]
    m = upsert_mapper()
    rejection = m.missing_for_create(m.map(record).payload)  # checked after merging
    assert rejection is not None
    assert rejection.code == "REQUIRED_FIELD_MISSING"
    assert rejection.fields == ("LastName",)


def test_upsert_required_field_not_mapped_is_refused_at_pre_flight() -> None:
    # Lead.Company is required on create; a mapping without it could never create a Lead
    with pytest.raises(ConfigError) as caught:
        upsert_mapper(
            "Lead",
            salesforce_id_type="Lead",
            field_mappings=mapping(("person.name.lastName", "LastName")),
        )
    assert "Company is required to create a Lead" in str(caught.value)


def test_upsert_defaulted_and_nillable_fields_are_not_required() -> None:
    # Opt_In__c / OwnerId are not nillable but defaulted on create; Id is not createable
    mapped = upsert_mapper().map(profile(externalId="CUST-1"))
    assert "Opt_In__c" not in mapped.payload
    assert "OwnerId" not in mapped.payload


@pytest.mark.parametrize("policy", ["truncate", "reject"])
def test_over_long_external_ids_are_rejected_never_truncated(policy: str) -> None:
    m = upsert_mapper(string_overflow=policy)
    shared = "K" * 50  # Ext_Id__c allows 50
    for external_id in (shared + "1", shared + "2"):
        rejection = rejection_of(m, profile(externalId=external_id))
        assert (rejection.code, rejection.fields) == ("STRING_TOO_LONG", ("Ext_Id__c",))
        assert shared not in rejection.message
    assert m.truncated == {}
    assert m.map(profile(externalId=shared)).key == shared.lower()  # at the limit: kept


@pytest.mark.parametrize(
    ("source", "field", "value"),
    [("ext", "Ext_Id__c", "E" * 51), ("owner", "OwnerId", "005" + "0" * 16)],
)
def test_key_fields_are_never_truncated_in_field_mappings(source: str, field: str,
                                                          value: str) -> None:
    m = mapper(field_mappings=mapping((source, field), ("title", "Title")))
    rejection = rejection_of(m, profile(**{source: value, "title": "T" * 200}))
    assert (rejection.code, rejection.fields) == ("STRING_TOO_LONG", (field,))
    assert "never truncated" in rejection.message
    assert m.map(profile(title="T" * 200)).payload["Title"] == "T" * 128  # others still are


def test_upsert_ignores_the_salesforce_id() -> None:
    mapped = upsert_mapper().map(profile(externalId="CUST-1", crmID="garbage"))
    assert "id" not in mapped.payload


# --------------------------------------------------------------------------- profile values


SECRET_VALUE = "Zyxwvutsrqponmlkjihgfedcba-PII-9876543210"


@pytest.mark.parametrize(
    ("overrides", "record_update"),
    [
        ({"string_overflow": "reject"},
         {"person": {"name": {"lastName": "x", "firstName": SECRET_VALUE}}}),
        ({}, {"personalEmail": {"address": SECRET_VALUE}}),
        ({}, {"personalEmail": {"address": SECRET_VALUE + "@" + "e" * 80 + ".com"}}),
        ({}, {"person": {"name": {"lastName": {"nested": SECRET_VALUE}}}}),
        ({}, {"crmID": SECRET_VALUE}),
    ],
)
def test_rejection_messages_never_contain_profile_values(
    overrides: dict[str, Any], record_update: dict[str, Any]
) -> None:
    rejection = rejection_of(mapper(**overrides), profile(**record_update))
    assert SECRET_VALUE not in rejection.message
    assert SECRET_VALUE[:20] not in rejection.message


# --------------------------------------------------------------------------- FieldSpec


def test_field_spec_from_describe_reads_every_key() -> None:
    spec = FieldSpec.from_describe(
        fld("Ext_Key_CS__c", "string", 50, external_id=True, case_sensitive=True)
    )
    assert spec == FieldSpec(
        name="Ext_Key_CS__c",
        type="string",
        length=50,
        createable=True,
        updateable=True,
        required_on_create=False,
        external_id=True,
        case_sensitive=True,
        html_formatted=False,
    )


@pytest.mark.parametrize(
    ("field", "required"),
    [
        (fld("LastName", nillable=False), True),
        (fld("FirstName", nillable=True), False),
        (fld("Opt_In__c", "boolean", nillable=False, defaulted=True), False),
        (fld("Id", "id", createable=False, nillable=False), False),
    ],
)
def test_required_on_create_rule(field: dict[str, Any], required: bool) -> None:
    assert FieldSpec.from_describe(field).required_on_create is required


@pytest.mark.parametrize(
    ("field", "external"),
    [
        (fld("Ext_Id__c", external_id=True), True),
        (fld("Email", "email", id_lookup=True), True),
        (fld("Id", "id", id_lookup=True), False),
        (fld("Title"), False),
    ],
)
def test_external_id_rule(field: dict[str, Any], external: bool) -> None:
    assert FieldSpec.from_describe(field).external_id is external


@pytest.mark.parametrize(
    ("field", "rich"),
    [
        (fld("A__c", "textarea", html=True), True),
        (fld("A__c", "textarea", extra="richtextarea"), True),
        (fld("A__c", "textarea", extra="RichTextArea"), True),
        (fld("A__c", "textarea", extra="plaintextarea"), False),
    ],
)
def test_rich_text_detection(field: dict[str, Any], rich: bool) -> None:
    assert FieldSpec.from_describe(field).html_formatted is rich


def test_field_spec_defaults_for_sparse_describe() -> None:
    spec = FieldSpec.from_describe({"name": "Legacy__c"})
    assert spec.type == "string"
    assert spec.length == 0
    assert spec.createable is False
    assert spec.updateable is False
    assert spec.required_on_create is False
    assert spec.external_id is False


# --------------------------------------------------------------------------- pre-flight


def preflight_error(object_type: str = "Contact", **overrides: Any) -> str:
    with pytest.raises(ConfigError) as info:
        check_fields(make_settings(**overrides), object_type, describe(object_type))
    message = str(info.value)
    assert message.startswith(f"pre-flight check of {object_type} failed, nothing was written: ")
    return message


def test_preflight_returns_fields_by_lower_case_name() -> None:
    fields = check_fields(make_settings(segment_mappings=SEGMENTS), "Contact", describe())
    assert fields["lastname"].name == "LastName"
    assert fields["seg_a__c"].type == "textarea"
    assert fields["email"].length == 80


def test_preflight_field_names_are_case_insensitive() -> None:
    settings = make_settings(
        field_mappings=mapping(("a", "lastname")),
        segment_mappings=[{"segment_id": "s", "mapping_id": "SEG_A__C"}],
    )
    fields = check_fields(settings, "Contact", describe())
    assert "lastname" in fields


def test_preflight_missing_field() -> None:
    message = preflight_error(field_mappings=mapping(("a", "Nickname__c")))
    assert "field_mappings target 'Nickname__c' does not exist on Contact" in message


def test_preflight_lead_reference_mapping_needs_company() -> None:
    # the Contact describe has no Company field: the Lead reference mapping cannot work there
    with pytest.raises(ConfigError) as info:
        check_fields(make_settings(), "Lead", describe("Contact"))
    assert "field_mappings target 'Company' does not exist on Lead" in str(info.value)


def test_preflight_non_updateable_field() -> None:
    message = preflight_error(field_mappings=mapping(("a", "Formula__c")))
    assert "field_mappings target 'Formula__c' is not updateable on Contact" in message


def test_preflight_upsert_needs_createable_fields() -> None:
    message = preflight_error(
        field_mappings=mapping(("a", "Update_Only__c")),
        operation="upsert",
        external_id_field="Ext_Id__c",
        external_id_source="externalId",
    )
    assert "'Update_Only__c' is not createable and updateable on Contact" in message


def test_preflight_update_accepts_update_only_fields() -> None:
    fields = check_fields(
        make_settings(field_mappings=mapping(("a", "Update_Only__c"))), "Contact", describe()
    )
    assert fields["update_only__c"].createable is False


def test_preflight_unsupported_type() -> None:
    message = preflight_error(field_mappings=mapping(("a", "Location__c")))
    assert "field_mappings target 'Location__c' has type location" in message


def test_preflight_missing_segment_field() -> None:
    message = preflight_error(segment_mappings=[{"segment_id": "seg-x", "mapping_id": "Seg_X"}])
    assert "segment_mappings mapping_id 'Seg_X__c' (segment seg-x)" in message
    assert "does not exist on Contact" in message
    assert "Text Area (Long)" in message


@pytest.mark.parametrize("name", ["Seg_Rich__c", "Seg_Rich_Mixed_Case__c"])
def test_preflight_rich_text_segment_field(name: str) -> None:
    message = preflight_error(segment_mappings=[{"segment_id": "s", "mapping_id": name}])
    assert f"mapping_id '{name}'" in message
    assert "rich text area" in message


@pytest.mark.parametrize(("name", "kind"), [("Plain_Text__c", "string"), ("Tags__c", "picklist")])
def test_preflight_non_textarea_segment_field(name: str, kind: str) -> None:
    message = preflight_error(segment_mappings=[{"segment_id": "s", "mapping_id": name}])
    assert f"mapping_id '{name}'" in message
    assert f"of type {kind}" in message
    assert "Text Area (Long)" in message


def test_preflight_non_updateable_segment_field() -> None:
    message = preflight_error(
        segment_mappings=[{"segment_id": "s", "mapping_id": "Seg_Readonly__c"}]
    )
    assert "mapping_id 'Seg_Readonly__c' (segment s): field is not updateable" in message


def test_preflight_segment_field_too_short_for_the_status() -> None:
    message = preflight_error(segment_mappings=[{"segment_id": "s", "mapping_id": "Seg_Short"}])
    assert "mapping_id 'Seg_Short__c'" in message
    assert "field length 5" in message
    assert "(8 characters)" in message  # 'realized' / 'existing'


def test_preflight_segment_length_counts_translated_statuses() -> None:
    long_status = "Member of the spring campaign audience"
    with pytest.raises(ConfigError) as info:
        check_fields(
            make_settings(
                segment_mappings=[{"segment_id": "s", "mapping_id": "Seg_Short"}],
                segment_status_values={"realized": long_status},
            ),
            "Contact",
            describe(),
        )
    assert f"({len(long_status)} characters)" in str(info.value)


def test_preflight_external_id_field_must_be_one() -> None:
    message = preflight_error(
        operation="upsert", external_id_field="Title", external_id_source="x"
    )
    assert "external_id_field 'Title' is not an External ID field on Contact" in message


def test_preflight_missing_external_id_field() -> None:
    message = preflight_error(
        operation="upsert", external_id_field="Nope__c", external_id_source="x"
    )
    assert "external_id_field 'Nope__c' does not exist on Contact" in message


def test_preflight_accepts_id_lookup_external_id() -> None:
    settings = make_settings(
        operation="upsert", external_id_field="Email", external_id_source="personalEmail.address"
    )
    assert check_fields(settings, "Contact", describe())["email"].external_id is True


def test_preflight_reports_every_problem_in_one_error() -> None:
    message = preflight_error(
        field_mappings=mapping(("a", "Nickname__c"), ("b", "Formula__c"), ("c", "LastName")),
        segment_mappings=[
            {"segment_id": "s1", "mapping_id": "Seg_Rich"},
            {"segment_id": "s2", "mapping_id": "Seg_Missing"},
            {"segment_id": "s3", "mapping_id": "Seg_A"},
        ],
    )
    for needle in ("'Nickname__c'", "'Formula__c'", "'Seg_Rich__c'", "'Seg_Missing__c'"):
        assert needle in message
    assert "LastName" not in message
    assert "Seg_A__c" not in message
    assert message.count("field_mappings target") == 2
    assert message.count("segment_mappings mapping_id") == 2
