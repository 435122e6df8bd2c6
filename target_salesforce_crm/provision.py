"""provision_segment_fields: create, during pre-flight, the segment fields and campaigns the
config names but the org lacks, and give the integration user access to them.

Runs before the pre-flight checks, which then see the new fields (describe is asked again). In a
dry run nothing is created: the report lists what would be. Running twice creates nothing.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from target_salesforce_crm.preflight import campaign_statuses, written_statuses
from target_salesforce_crm.salesforce.campaigns import Campaign, find_campaigns
from target_salesforce_crm.salesforce.client import SalesforceClient
from target_salesforce_crm.salesforce.describe import field_specs
from target_salesforce_crm.salesforce.provisioning import Provisioner, field_metadata
from target_salesforce_crm.settings import Settings

LOGGER = logging.getLogger("target-salesforce-crm")
DESCRIBE_WAIT_SECONDS = (1, 2, 4, 8, 16, 32)  # a new field can take a moment to show
PLANNED_ID = "(to be created)"


class SegmentProvisioning:
    """Plans and (unless a dry run) creates what the segment mappings need."""

    def __init__(self, client: SalesforceClient, settings: Settings,
                 identity_url: str | None) -> None:
        self.client = client
        self.settings = settings
        self.identity_url = identity_url
        self.provisioner = Provisioner(client)
        self.done: dict[str, Any] = {"fields_created": [], "fields_granted": [],
                                     "permission_set_created": False,
                                     "permission_set_assigned": False,
                                     "campaigns_created": [], "statuses_added": {}}

    def report(self) -> dict[str, Any]:
        verb = "would_create" if self.settings.dry_run else "created"
        return {verb: self.done, "calls": self.provisioner.calls}

    def fields(self, describes: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        """Create the missing segment fields of each object; the describes to check."""
        settings = self.settings
        missing: dict[str, list[tuple[str, str]]] = {}
        for object_type, describe in describes.items():
            present = field_specs(describe)
            missing[object_type] = [(m.mapping_id, m.model) for m in settings.field_segments
                                    if m.mapping_id.lower() not in present]
        if not any(missing.values()):
            return describes
        permission_set = ""
        if not settings.dry_run:
            permission_set, created = self.provisioner.permission_set(
                settings.provision_permission_set,
                settings.provision_permission_set.replace("_", " "))
            self.done["permission_set_created"] = created
        for object_type, fields in missing.items():
            if not fields:
                continue
            hidden = self.provisioner.existing_fields(object_type, [name for name, _ in fields])
            for name, model in fields:
                full = f"{object_type}.{name}"
                if name not in hidden:
                    self.done["fields_created"].append(full)
                    if not settings.dry_run:
                        label = name[:-3].replace("_", " ")
                        metadata = field_metadata(model, label, written_statuses(settings))
                        self.provisioner.create_field(object_type, name, metadata)
                if settings.dry_run:
                    continue
                if self.provisioner.grant_field(permission_set, object_type, name):
                    self.done["fields_granted"].append(full)
        if settings.dry_run:  # check and map as if they existed; nothing is created
            return {object_type: {**describes[object_type], "fields": [
                *describes[object_type].get("fields", []),
                *(_planned_field(name, model, written_statuses(settings))
                  for name, model in names)]} for object_type, names in missing.items()}
        user = self.provisioner.current_user_id(self.identity_url)
        self.done["permission_set_assigned"] = self.provisioner.assign(permission_set, user)
        LOGGER.info("provisioned segment fields: created %s, access granted through permission "
                    "set %s", self.done["fields_created"] or "none",
                    settings.provision_permission_set)
        return {object_type: self._describe_until_visible(object_type, names)
                if names else describes[object_type]
                for object_type, names in missing.items()}

    def campaigns(self) -> dict[str, Campaign]:
        """Create missing campaigns (by name) and their missing member statuses; in a dry run,
        the campaigns that would be created (to check and map as if they existed)."""
        segments = self.settings.campaign_segments
        planned: dict[str, Campaign] = {}
        if not segments:
            return planned
        found = find_campaigns(self.client, [m.mapping_id for m in segments])
        statuses = campaign_statuses(self.settings)
        for segment in segments:
            matches = found.get(segment.mapping_id) or []
            if len(matches) > 1:
                continue  # ambiguous: pre-flight names it; creating another would not help
            if not matches:
                if segment.mapping_id.startswith("701"):
                    continue  # an Id that does not exist cannot be created: pre-flight says so
                self.done["campaigns_created"].append(segment.mapping_id)
                if self.settings.dry_run:
                    self.done["statuses_added"][segment.mapping_id] = list(statuses)
                    planned[segment.mapping_id] = Campaign(
                        PLANNED_ID, segment.mapping_id, frozenset(statuses))
                    continue
                campaign_id = self.provisioner.create_campaign(segment.mapping_id)
                present: frozenset[str] = frozenset()
            else:
                campaign_id, present = matches[0].id, matches[0].statuses
            missing = [status for status in statuses if status not in present]
            if not missing:
                continue
            self.done["statuses_added"][segment.mapping_id] = missing
            if self.settings.dry_run:
                planned[segment.mapping_id] = Campaign(campaign_id, segment.mapping_id,
                                                       frozenset(statuses) | present)
            else:
                self.provisioner.add_statuses(campaign_id, missing)
        return planned

    def _describe_until_visible(self, object_type: str, fields: list[tuple[str, str]]
                                ) -> dict[str, Any]:
        """Describe again until every new field shows (access can take a moment)."""
        wanted = {name.lower() for name, _ in fields}
        describe: dict[str, Any] = {}
        for pause in (0, *DESCRIBE_WAIT_SECONDS):
            time.sleep(pause)
            describe = self.client.describe(object_type)
            if wanted <= set(field_specs(describe)):
                break
        return describe


def _planned_field(name: str, model: str, statuses: tuple[str, ...]) -> dict[str, Any]:
    """The describe entry a field created for ``model`` will have."""
    kind = {"text_area": "textarea", "checkbox": "boolean", "picklist": "picklist"}[model]
    return {"name": name, "type": kind, "length": 32_768 if kind == "textarea" else 0,
            "createable": True, "updateable": True, "nillable": kind != "boolean",
            "restrictedPicklist": kind == "picklist",
            "picklistValues": [{"value": v, "label": v, "active": True} for v in statuses]
            if kind == "picklist" else []}
