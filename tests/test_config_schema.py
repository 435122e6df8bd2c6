"""The JSON schema and parse_settings agree on every default, allowed value and bound.

Both read them from settings.py; these tests cross-check the two readings, so a default
changed in one place only (or a schema bound parse_settings does not enforce) fails here.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from target_salesforce_crm.config_schema import CONFIG_SCHEMA
from target_salesforce_crm.settings import Settings, SettingsError, parse_settings

PROPERTIES: dict[str, dict[str, Any]] = CONFIG_SCHEMA["properties"]
# the Settings attribute each setting lands in, where the names differ
ATTRIBUTE = {"salesforce_id_type": "object_type"}
# settings whose default is derived, not a value: told in the schema's description instead
DERIVED = {"login_url": "from domain", "field_mappings": "the object's reference mapping"}

MINIMAL: dict[str, Any] = {
    "domain": "acme",
    "username": "integration@acme.example",
    "password": "a-long-password",
    "client_id": "consumer-key",
    "client_secret": "consumer-secret",
}
# every credential and the upsert fields, so that any allowed value of any setting can be tried
COMPLETE: dict[str, Any] = {
    **MINIMAL,
    "refresh_token": "refresh-token-value",
    "private_key": "-----BEGIN PRIVATE KEY-----",
    "external_id_field": "Customer_Key__c",
    "external_id_source": "customerKey",
}


def attribute(name: str) -> str:
    return ATTRIBUTE.get(name, name)


def schema_defaults() -> dict[str, Any]:
    return {name: prop["default"] for name, prop in PROPERTIES.items() if "default" in prop}


def test_the_schema_states_defaults() -> None:
    assert schema_defaults(), "CONFIG_SCHEMA carries no defaults: the cross-checks would be empty"


@pytest.mark.parametrize("name", sorted(schema_defaults()))
def test_schema_default_is_what_parse_settings_applies(name: str) -> None:
    settings = parse_settings(dict(MINIMAL))
    assert getattr(settings, attribute(name)) == schema_defaults()[name]


def test_stating_every_schema_default_changes_nothing() -> None:
    """The SDK fills the schema's defaults into the config; parse_settings must land on the
    same Settings as when they are left out."""
    assert parse_settings({**MINIMAL, **schema_defaults()}) == parse_settings(dict(MINIMAL))


def test_every_setting_parse_settings_defaults_has_its_default_in_the_schema() -> None:
    """A default applied by parse_settings alone would be invisible in ``--about`` and Meltano."""
    settings = parse_settings(dict(MINIMAL))
    fields = {f.name for f in dataclasses.fields(Settings)}
    unstated = {
        name: getattr(settings, attribute(name))
        for name, prop in PROPERTIES.items()
        if attribute(name) in fields and "default" not in prop and name not in DERIVED
        and getattr(settings, attribute(name)) not in (None, {}, ())
    }
    assert unstated == {}


@pytest.mark.parametrize("name", sorted(DERIVED))
def test_derived_defaults_are_described(name: str) -> None:
    assert DERIVED[name] in PROPERTIES[name]["description"]


ENUMS = sorted(
    (name, value) for name, prop in PROPERTIES.items() for value in prop.get("enum", [])
)


@pytest.mark.parametrize(("name", "value"), ENUMS)
def test_every_allowed_value_is_accepted_by_parse_settings(name: str, value: str) -> None:
    settings = parse_settings({**COMPLETE, name: value})
    assert getattr(settings, attribute(name)) == value


def bounds() -> list[tuple[str, str, float, float]]:
    """(setting, 'minimum'/'maximum', the bound, a value just past it)."""
    cases = []
    for name, prop in PROPERTIES.items():
        step = 1 if prop.get("type") == "integer" or "integer" in prop.get("type", []) else 0.5
        if "minimum" in prop:
            cases.append((name, "minimum", prop["minimum"], prop["minimum"] - step))
        if "maximum" in prop:
            cases.append((name, "maximum", prop["maximum"], prop["maximum"] + step))
    return cases


def test_the_schema_states_bounds() -> None:
    assert bounds()


@pytest.mark.parametrize(("name", "kind", "bound", "past"), bounds())
def test_schema_bounds_are_parse_settings_bounds(
    name: str, kind: str, bound: float, past: float
) -> None:
    assert getattr(parse_settings({**MINIMAL, name: bound}), attribute(name)) == bound
    with pytest.raises(SettingsError) as refused:
        parse_settings({**MINIMAL, name: past})
    [problem] = refused.value.problems
    assert problem.startswith(f"{name} ")
    assert f"{bound:g}" in problem
