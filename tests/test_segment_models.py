"""Segment models in mapping and pre-flight: checkbox, picklist, campaign (pure logic)."""

from __future__ import annotations

from typing import Any

import pytest

from target_salesforce_crm.mapping import RecordMapper
from target_salesforce_crm.preflight import check_campaigns, check_fields
from target_salesforce_crm.rejections import RecordRejected
from target_salesforce_crm.salesforce.campaigns import Campaign
from target_salesforce_crm.salesforce.errors import ConfigError
from target_salesforce_crm.settings import SettingsError, parse_settings

CONTACT = "003A0000006Vm9rIAC"
BASE = {"login_url": "http://127.0.0.1:1", "username": "u", "password": "p", "client_id": "c",
        "client_secret": "s"}


def _field(name: str, type_: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "type": type_, "length": extra.pop("length", 0), "createable": True,
            "updateable": True, "nillable": True, **extra}


def _picklist(name: str, values: list[str], *, restricted: bool = True) -> dict[str, Any]:
    return _field(name, "picklist", length=255, restrictedPicklist=restricted,
                  picklistValues=[{"value": v, "label": v, "active": True} for v in values])


DESCRIBE = {"fields": [
    _field("Id", "id", length=18), _field("LastName", "string", length=80),
    _field("FirstName", "string", length=40), _field("Email", "email", length=80),
    _field("Seg_Box__c", "boolean"),
    _picklist("Seg_Pick__c", ["realized", "existing", "Left"]),
    _field("Seg_Text__c", "textarea", length=32768),
]}


def _settings(**config: Any) -> Any:
    return parse_settings({**BASE, **config})


def _profile(**statuses: str) -> dict[str, Any]:
    return {"crmID": CONTACT, "segmentMembership": {"ups": {
        seg: {"status": status} for seg, status in statuses.items()}}}


def test_checkbox_holds_true_while_in_the_segment():
    settings = _settings(segment_mappings=[
        {"segment_id": "a", "mapping_id": "Seg_Box", "model": "checkbox"}])
    mapper = RecordMapper(settings, "Contact", check_fields(settings, "Contact", DESCRIBE))
    assert [mapper.map(_profile(a=s)).payload["Seg_Box__c"]
            for s in ("realized", "existing", "exited")] == [True, True, False]
    with pytest.raises(RecordRejected) as caught:
        mapper.map(_profile(a="pending"))
    assert caught.value.rejection.code == "INVALID_SEGMENT_STATUS"


def test_picklist_receives_the_translated_status():
    settings = _settings(segment_model="picklist", segment_status_values={"exited": "Left"},
                         segment_mappings=[{"segment_id": "a", "mapping_id": "Seg_Pick"}])
    mapper = RecordMapper(settings, "Contact", check_fields(settings, "Contact", DESCRIBE))
    assert mapper.map(_profile(a="exited")).payload["Seg_Pick__c"] == "Left"
    assert mapper.map(_profile(a="existing")).payload["Seg_Pick__c"] == "existing"


def test_picklist_without_a_value_for_a_status_is_refused_naming_it():
    settings = _settings(segment_model="picklist",
                         segment_mappings=[{"segment_id": "a", "mapping_id": "Seg_Pick"}])
    with pytest.raises(ConfigError, match="no active value 'exited'"):
        check_fields(settings, "Contact", DESCRIBE)


@pytest.mark.parametrize(("model", "field"), [("checkbox", "Seg_Text"), ("picklist", "Seg_Box"),
                                              ("text_area", "Seg_Pick")])
def test_a_field_of_the_wrong_type_for_its_model_is_refused(model, field):
    settings = _settings(segment_mappings=[
        {"segment_id": "a", "mapping_id": field, "model": model}])
    with pytest.raises(ConfigError, match=f"{field}__c"):
        check_fields(settings, "Contact", DESCRIBE)


def test_campaign_segments_carry_memberships_not_fields():
    settings = _settings(segment_mappings=[
        {"segment_id": "a", "mapping_id": "Spring Promo", "model": "campaign"},
        {"segment_id": "b", "mapping_id": "Seg_Text"}])
    mapper = RecordMapper(settings, "Contact", check_fields(settings, "Contact", DESCRIBE))
    mapped = mapper.map(_profile(a="realized", b="exited"))
    assert mapped.payload["Seg_Text__c"] == "exited"
    assert "Spring Promo" not in str(mapped.payload)
    assert mapped.memberships == {"a": "realized"}


def test_field_and_campaign_limits():
    fields = [{"segment_id": f"s{n}", "mapping_id": f"Seg_{n}"} for n in range(26)]
    with pytest.raises(SettingsError, match="26 entries for segment fields"):
        _settings(segment_mappings=fields)
    campaigns = [{"segment_id": f"s{n}", "mapping_id": f"Campaign {n}", "model": "campaign"}
                 for n in range(250)]
    assert len(_settings(segment_mappings=campaigns).campaign_segments) == 250
    with pytest.raises(SettingsError, match="251 campaign segments"):
        _settings(segment_mappings=[*campaigns, {"segment_id": "x", "mapping_id": "More",
                                                 "model": "campaign"}])


def test_campaign_preflight_names_unknown_ambiguous_and_missing_statuses():
    settings = _settings(segment_model="campaign", segment_mappings=[
        {"segment_id": "a", "mapping_id": "Unknown"},
        {"segment_id": "b", "mapping_id": "Twice"},
        {"segment_id": "c", "mapping_id": "Short"},
        {"segment_id": "d", "mapping_id": "Good"}])
    every = frozenset({"realized", "existing", "exited"})
    found = {"Unknown": [],
             "Twice": [Campaign("701A", "Twice", every), Campaign("701B", "Twice", every)],
             "Short": [Campaign("701C", "Short", frozenset({"realized", "Sent"}))],
             "Good": [Campaign("701D", "Good", every)]}
    with pytest.raises(ConfigError) as caught:
        check_campaigns(settings, found)
    message = str(caught.value)
    assert "'Unknown'" in message and "no Campaign" in message
    assert "2 Campaigns have this name (701A, 701B)" in message
    assert "701C has no Campaign Member Status 'existing', 'exited'" in message
    assert "Good" not in message
    removing = _settings(segment_model="campaign", campaign_exit="delete",
                         segment_mappings=[{"segment_id": "a", "mapping_id": "Two"}])
    two = {"Two": [Campaign("701E", "Two", frozenset({"realized", "existing"}))]}
    assert check_campaigns(removing, two)["a"].id == "701E"
