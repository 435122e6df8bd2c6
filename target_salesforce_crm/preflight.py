"""Pre-flight: check the configuration against the org's describe before the first write.

Adobe's destination reports a bad Mapping ID only as "Unknown errors encountered while pushing
events"; we refuse to start instead, naming every field that cannot work.
"""

from __future__ import annotations

from typing import Any

from target_salesforce_crm.salesforce.describe import WRITABLE_TYPES, FieldSpec, field_specs
from target_salesforce_crm.salesforce.errors import ConfigError
from target_salesforce_crm.settings import Settings

SEGMENT_STATUSES = ("realized", "existing", "exited")


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

    statuses = [*SEGMENT_STATUSES, *settings.segment_status_values.values()]
    longest_status = max(len(s) for s in statuses)
    for segment in settings.segment_mappings:
        spec = fields.get(segment.mapping_id.lower())
        label = f"segment_mappings mapping_id {segment.mapping_id!r} (segment {segment.segment_id})"
        if spec is None:
            problems.append(
                f"{label}: field does not exist on {object_type}; create a custom Text Area (Long) "
                "field with exactly this API name"
            )
        elif not writable(spec):
            problems.append(f"{label}: field is not updateable on {object_type}")
        elif spec.type != "textarea" or spec.html_formatted:
            kind = "a rich text area" if spec.html_formatted else f"of type {spec.type}"
            problems.append(f"{label}: field is {kind}; segment fields must be Text Area (Long)")
        elif spec.length < longest_status:
            problems.append(
                f"{label}: field length {spec.length} is shorter than the longest status "
                f"({longest_status} characters)"
            )

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
