"""Creating what segments need: custom fields (Tooling API), access to them through a
permission set, and campaigns with their member statuses (contract part 2, §3 and §5).

A field created through the Tooling API is invisible to everyone until field-level security is
granted, so creation is always followed by FieldPermissions in a permission set assigned to the
integration user. Every step first looks for what exists, so running it twice creates nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from urllib.parse import urlencode

from target_salesforce_crm.salesforce.client import SalesforceClient
from target_salesforce_crm.salesforce.errors import RequestFailed
from target_salesforce_crm.salesforce.soql import quoted

LONG_TEXT_LENGTH = 32_768
FIELD_METADATA_TYPES = {"text_area": "LongTextArea", "checkbox": "Checkbox",
                        "picklist": "Picklist"}
MANAGED_BY = "Segment status managed by target-salesforce-crm"


def field_metadata(model: str, label: str, values: Iterable[str] = ()) -> dict[str, Any]:
    """CustomField metadata for a segment field of ``model`` (contract part 2, §5.1)."""
    metadata: dict[str, Any] = {"label": label[:40], "type": FIELD_METADATA_TYPES[model],
                                "description": MANAGED_BY, "required": False}
    if model == "text_area":
        metadata.update(length=LONG_TEXT_LENGTH, visibleLines=3)
    elif model == "checkbox":
        metadata["defaultValue"] = False
    else:
        metadata["valueSet"] = {"restricted": True, "valueSetDefinition": {
            "sorted": False,
            "value": [{"fullName": v, "default": False, "label": v} for v in values]}}
    return metadata


class Provisioner:
    """Looks up and creates fields, permission sets and campaigns (one API call each step)."""

    def __init__(self, client: SalesforceClient) -> None:
        self.client = client
        self.calls = 0

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        self.calls += 1
        return self.client.call(method, path, body, kind="provisioning")

    def _query(self, soql: str, *, tooling: bool = False) -> list[dict[str, Any]]:
        resource = "tooling/query" if tooling else "query"
        self.calls += 1
        page = self.client.call("GET", f"{resource}?{urlencode({'q': soql})}",
                                kind="provisioning")
        return list(page.get("records") or [])

    def existing_fields(self, object_type: str, names: Iterable[str]) -> set[str]:
        """API names (with ``__c``) of custom fields that exist on the object, visible or not."""
        developer = {name[:-3] if name.lower().endswith("__c") else name: name for name in names}
        if not developer:
            return set()
        rows = self._query(
            "SELECT Id, DeveloperName FROM CustomField WHERE TableEnumOrId = "  # noqa: S608
            f"{quoted([object_type])} AND DeveloperName IN ({quoted(developer)})",
            tooling=True,
        )
        lowered = {key.lower(): value for key, value in developer.items()}
        return {lowered[str(row["DeveloperName"]).lower()] for row in rows
                if str(row.get("DeveloperName", "")).lower() in lowered}

    def create_field(self, object_type: str, name: str, metadata: dict[str, Any]) -> str:
        answer = self._call("POST", "tooling/sobjects/CustomField",
                            {"FullName": f"{object_type}.{name}", "Metadata": metadata})
        return str(answer.get("id") or "")

    def permission_set(self, name: str, label: str) -> tuple[str, bool]:
        """The permission set's Id, creating it if missing; True when created."""
        rows = self._query(
            f"SELECT Id, Name FROM PermissionSet WHERE Name = {quoted([name])}"  # noqa: S608
        )
        if rows:
            return str(rows[0]["Id"]), False
        answer = self._call("POST", "sobjects/PermissionSet",
                            {"Name": name, "Label": label, "Description": MANAGED_BY})
        return str(answer["id"]), True

    def grant_field(self, permission_set_id: str, object_type: str, name: str) -> bool:
        """Read and edit on the field through the permission set; True when granted now."""
        full = f"{object_type}.{name}"
        rows = self._query(
            "SELECT Id, PermissionsRead, PermissionsEdit FROM FieldPermissions WHERE "  # noqa: S608
            f"ParentId = {quoted([permission_set_id])} AND Field = {quoted([full])}"
        )
        if rows and rows[0].get("PermissionsRead") and rows[0].get("PermissionsEdit"):
            return False
        if rows:
            self._call("PATCH", f"sobjects/FieldPermissions/{rows[0]['Id']}",
                       {"PermissionsRead": True, "PermissionsEdit": True})
        else:
            self._call("POST", "sobjects/FieldPermissions",
                       {"ParentId": permission_set_id, "SobjectType": object_type,
                        "Field": full, "PermissionsRead": True, "PermissionsEdit": True})
        return True

    def assign(self, permission_set_id: str, user_id: str) -> bool:
        """Assign the permission set to the user; True when assigned now."""
        try:
            self._call("POST", "sobjects/PermissionSetAssignment",
                       {"AssigneeId": user_id, "PermissionSetId": permission_set_id})
        except RequestFailed as exc:
            if exc.error_code == "DUPLICATE_VALUE":  # already assigned: what was wanted
                return False
            raise
        return True

    def current_user_id(self, identity_url: str | None) -> str:
        """The integration user: the token response's identity URL ends with its Id."""
        if identity_url and identity_url.rstrip("/").rsplit("/", 1)[-1].startswith("005"):
            return identity_url.rstrip("/").rsplit("/", 1)[-1]
        self.calls += 1
        info = self.client.call("GET", "/services/oauth2/userinfo", kind="provisioning")
        return str(info["user_id"])

    def create_campaign(self, name: str) -> str:
        answer = self._call("POST", "sobjects/Campaign", {"Name": name, "IsActive": True})
        return str(answer["id"])

    def add_statuses(self, campaign_id: str, labels: Iterable[str]) -> list[str]:
        """Add the missing member statuses (after the highest SortOrder); returns those added."""
        rows = self._query(
            "SELECT Label, SortOrder FROM CampaignMemberStatus WHERE CampaignId = "  # noqa: S608
            f"{quoted([campaign_id])}"
        )
        present = {str(row.get("Label")) for row in rows}
        order = max((int(row.get("SortOrder") or 0) for row in rows), default=0)
        added = []
        for label in labels:
            if label in present:
                continue
            order += 1
            self._call("POST", "sobjects/CampaignMemberStatus",
                       {"CampaignId": campaign_id, "Label": label, "SortOrder": order,
                        "IsDefault": False, "HasResponded": False})
            added.append(label)
        return added
