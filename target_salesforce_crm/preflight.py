"""Pre-flight: check the configuration against the org's describe before the first write.

Adobe's destination reports a bad Mapping ID only as "Unknown errors encountered while pushing
events"; we refuse to start instead, naming every field that cannot work.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from target_salesforce_crm.salesforce.describe import WRITABLE_TYPES, FieldSpec, field_specs
from target_salesforce_crm.salesforce.errors import ConfigError
from target_salesforce_crm.settings import SEGMENT_STATUSES, Settings

if TYPE_CHECKING:
    from target_salesforce_crm.salesforce.campaigns import Campaign

MODEL_FIELD_TYPES = {"text_area": "Text Area (Long)", "checkbox": "Checkbox",
                     "picklist": "Picklist (restricted)"}


def written_statuses(settings: Settings) -> tuple[str, ...]:
    """Every value a status field can receive: each status or its translation."""
    translate = settings.segment_status_values
    return tuple(dict.fromkeys(translate.get(status, status) for status in SEGMENT_STATUSES))


def segment_field_problem(model: str, spec: FieldSpec, statuses: tuple[str, ...]) -> str | None:
    """Why a field cannot hold a segment's status under ``model``, or None."""
    if model == "checkbox":
        return None if spec.type == "boolean" else (
            f"field is of type {spec.type}; the checkbox model needs a Checkbox field")
    if model == "picklist":
        if spec.type != "picklist":
            return f"field is of type {spec.type}; the picklist model needs a Picklist field"
        missing = [value for value in statuses if value not in spec.picklist_values]
        if missing:
            kind = "restricted picklist" if spec.restricted_picklist else "picklist"
            return (f"the {kind} has no active value {', '.join(map(repr, missing))}; add "
                    "these values (or set provision_segment_fields)")
        return None
    if spec.type != "textarea" or spec.html_formatted:
        kind = "a rich text area" if spec.html_formatted else f"of type {spec.type}"
        return f"field is {kind}; segment fields must be Text Area (Long)"
    longest = max(utf16_length(status) for status in statuses)
    if spec.length < longest:
        return (f"field length {spec.length} is shorter than the longest status "
                f"({longest} characters)")
    return None


def utf16_length(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def check_fields(
    settings: Settings, object_type: str, describe: dict[str, Any]
) -> dict[str, FieldSpec]:
    """Return the object's fields by lower-case name, or raise ConfigError listing problems."""
    fields = field_specs(describe)
    upsert = settings.operation == "upsert"
    problems: list[str] = []

    def writable(spec: FieldSpec) -> bool:
        return spec.updateable and (spec.createable or not upsert)

    for mapping in settings.mappings_for(object_type):
        spec = fields.get(mapping.target.lower())
        label = f"field_mappings target {mapping.target!r}"
        if spec is None:
            problems.append(f"{label} does not exist on {object_type}")
        elif not writable(spec):
            verb = "createable and updateable" if upsert else "updateable"
            problems.append(f"{label} is not {verb} on {object_type}")
        elif spec.type not in WRITABLE_TYPES:
            problems.append(f"{label} has type {spec.type}, which this target cannot write")

    for segment in settings.field_segments:
        spec = fields.get(segment.mapping_id.lower())
        label = f"segment_mappings mapping_id {segment.mapping_id!r} (segment {segment.segment_id})"
        if spec is None:
            problems.append(
                f"{label}: field does not exist on {object_type}; create a custom "
                f"{MODEL_FIELD_TYPES[segment.model]} field with exactly this API name (or set "
                "provision_segment_fields)"
            )
        elif not writable(spec):
            problems.append(f"{label}: field is not updateable on {object_type}")
        else:
            problem = segment_field_problem(segment.model, spec, written_statuses(settings))
            if problem:
                problems.append(f"{label}: {problem}")

    if upsert:
        mapped = {m.target.lower() for m in settings.mappings_for(object_type)}
        for spec in fields.values():
            if spec.required_on_create and spec.name.lower() not in mapped:
                problems.append(
                    f"{spec.name} is required to create a {object_type} but no field_mappings "
                    "target writes it, so upsert could never create a record"
                )

    if upsert and settings.external_id_field:
        spec = fields.get(settings.external_id_field.lower())
        label = f"external_id_field {settings.external_id_field!r}"
        if spec is None:
            problems.append(f"{label} does not exist on {object_type}")
        elif not spec.external_id:
            problems.append(f"{label} is not an External ID field on {object_type}")

    if problems:
        raise ConfigError(
            f"pre-flight check of {object_type} failed, nothing was written: "
            + "; ".join(problems)
        )
    return fields


def check_campaigns(settings: Settings, found: dict[str, list[Campaign]]) -> dict[str, Campaign]:
    """Each campaign segment's one Campaign, or ConfigError naming what is unknown, ambiguous
    or missing a member status (``found``: reference → matching campaigns)."""
    statuses = campaign_statuses(settings)
    problems: list[str] = []
    campaigns: dict[str, Campaign] = {}
    for segment in settings.campaign_segments:
        label = (f"segment_mappings mapping_id {segment.mapping_id!r} "
                 f"(segment {segment.segment_id}, campaign model)")
        matches = found.get(segment.mapping_id, [])
        if not matches:
            problems.append(f"{label}: no Campaign has this Id or name")
            continue
        if len(matches) > 1:
            ids = ", ".join(campaign.id for campaign in matches)
            problems.append(f"{label}: {len(matches)} Campaigns have this name ({ids}); "
                            "use the Campaign Id")
            continue
        campaign = matches[0]
        missing = [status for status in statuses if status not in campaign.statuses]
        if missing:
            problems.append(
                f"{label}: Campaign {campaign.id} has no Campaign Member Status "
                f"{', '.join(map(repr, missing))}; add them (or set provision_segment_fields)"
            )
        campaigns[segment.segment_id] = campaign
    if problems:
        raise ConfigError("pre-flight of campaign segments failed, nothing was written: "
                          + "; ".join(problems))
    return campaigns


def campaign_statuses(settings: Settings) -> tuple[str, ...]:
    """The member statuses a campaign segment can write (an exit writes none when members
    are removed on exit)."""
    statuses = written_statuses(settings)
    if settings.campaign_exit == "delete":
        exited = settings.segment_status_values.get("exited", "exited")
        statuses = tuple(status for status in statuses if status != exited)
    return statuses
