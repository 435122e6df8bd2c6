"""Describe metadata for the objects beyond Contact and Lead: Campaign, CampaignMember and
CampaignMemberStatus (contract part 2, §3), the setup objects that grant field-level
security (§5.3: PermissionSet, FieldPermissions, PermissionSetAssignment), and the Tooling
API's CustomField (§5.1)."""

from __future__ import annotations

from .schema import (
    FieldSpec,
    SObjectSchema,
    build_object,
    lifecycle_fields,
    make_field,
    make_reference,
)

CAMPAIGN_STATUSES = ("Planned", "In Progress", "Completed", "Aborted")
CAMPAIGN_TYPES = ("Advertisement", "Email", "Telemarketing", "Banner Ads", "Seminar / Conference",
                  "Public Relations", "Partners", "Referral Program", "Conference", "Webinar",
                  "Trade Show", "Direct Mail", "Other")


def _base(object_name: str) -> list[FieldSpec]:
    return [
        make_field("Id", "Record ID", "id", 18, createable=False, updateable=False,
                   nillable=False, defaulted=True, id_lookup=True),
        lifecycle_fields(object_name)[0],  # IsDeleted; merges only apply to people
    ]


def _audit() -> list[FieldSpec]:
    return [
        make_field("CreatedDate", "Created Date", "datetime", createable=False, updateable=False,
                   nillable=False, defaulted=True),
        make_field("LastModifiedDate", "Last Modified Date", "datetime", createable=False,
                   updateable=False, nillable=False, defaulted=True),
    ]


def _int(name: str, label: str, *, defaulted: bool = False) -> FieldSpec:
    spec = make_field(name, label, "int", defaulted=defaulted)
    spec.describe.update(digits=9, soapType="xsd:int")
    return spec


def _campaign() -> SObjectSchema:
    return build_object("Campaign", "Campaign", "Campaigns", "701", [
        *_base("Campaign"),
        make_field("Name", "Name", "string", 80, nillable=False, id_lookup=True),
        make_field("IsActive", "Active", "boolean", nillable=False, defaulted=True, default=False),
        make_field("Status", "Status", "picklist", 40, defaulted=True, picklist=CAMPAIGN_STATUSES,
                   default=CAMPAIGN_STATUSES[0]),
        make_field("Type", "Type", "picklist", 40, picklist=CAMPAIGN_TYPES),
        make_field("StartDate", "Start Date", "date"),
        make_field("EndDate", "End Date", "date"),
        make_field("Description", "Description", "textarea", 32000),
        *_audit(),
    ], compound_name=False)


def _campaign_member() -> SObjectSchema:
    return build_object("CampaignMember", "Campaign Member", "Campaign Members", "00v", [
        *_base("CampaignMember"),
        make_reference("CampaignId", "Campaign ID", ["Campaign"], createable=True,
                       nillable=False),
        make_reference("ContactId", "Contact ID", ["Contact"], createable=True),
        make_reference("LeadId", "Lead ID", ["Lead"], createable=True),
        make_reference("LeadOrContactId", "Contact or Lead ID", ["Contact", "Lead"]),
        make_field("Status", "Status", "picklist", 40),
        make_field("HasResponded", "Responded", "boolean", createable=False, updateable=False,
                   nillable=False, defaulted=True, default=False),
        make_field("FirstRespondedDate", "First Responded Date", "date", createable=False,
                   updateable=False),
        *_audit(),
    ], compound_name=False)


def _campaign_member_status() -> SObjectSchema:
    return build_object(
        "CampaignMemberStatus", "Campaign Member Status", "Campaign Member Statuses", "01Y", [
            *_base("CampaignMemberStatus"),
            make_reference("CampaignId", "Campaign ID", ["Campaign"], createable=True,
                           nillable=False),
            make_field("Label", "Member Status", "string", 765, nillable=False),
            make_field("IsDefault", "Default", "boolean", nillable=False, defaulted=True,
                       default=False),
            make_field("HasResponded", "Responded", "boolean", nillable=False, defaulted=True,
                       default=False),
            _int("SortOrder", "Sort Order", defaulted=True),
            *_audit(),
        ], compound_name=False)


def _permission_objects() -> list[SObjectSchema]:
    return [
        build_object("PermissionSet", "Permission Set", "Permission Sets", "0PS", [
            *_base("PermissionSet"),
            make_field("Name", "Name", "string", 80, nillable=False),
            make_field("Label", "Label", "string", 80, nillable=False),
            make_field("Description", "Description", "string", 255),
            make_field("IsOwnedByProfile", "Is Owned By Profile", "boolean", createable=False,
                       updateable=False, nillable=False, defaulted=True, default=False),
            *_audit(),
        ], compound_name=False),
        build_object("FieldPermissions", "Field Permissions", "Field Permissions", "01k", [
            *_base("FieldPermissions"),
            make_reference("ParentId", "Parent ID", ["PermissionSet"], createable=True,
                           nillable=False),
            make_field("SobjectType", "Object Name", "picklist", 40, updateable=False,
                       nillable=False),
            make_field("Field", "Field Name", "picklist", 255, updateable=False,
                       nillable=False),
            make_field("PermissionsRead", "Read Access", "boolean", nillable=False,
                       defaulted=True, default=False),
            make_field("PermissionsEdit", "Edit Access", "boolean", nillable=False,
                       defaulted=True, default=False),
            *_audit(),
        ], compound_name=False),
        build_object("PermissionSetAssignment", "Permission Set Assignment",
                     "Permission Set Assignments", "0Pa", [
            *_base("PermissionSetAssignment"),
            make_reference("AssigneeId", "Assignee ID", ["User"], createable=True,
                           nillable=False),
            make_reference("PermissionSetId", "Permission Set ID", ["PermissionSet"],
                           createable=True, nillable=False),
            *_audit(),
        ], compound_name=False),
    ]


def custom_field_schema() -> SObjectSchema:
    """The Tooling API's CustomField, as far as a Tooling query reads it (§5.1)."""
    return build_object("CustomField", "Custom Field", "Custom Fields", "00N", [
        make_field("Id", "Custom Field Definition ID", "id", 18, createable=False,
                   updateable=False, nillable=False, defaulted=True, id_lookup=True),
        make_field("DeveloperName", "Field Name", "string", 40, nillable=False),
        make_field("TableEnumOrId", "Table Enum or ID", "string", 40, nillable=False),
        make_field("FullName", "Full Name", "string", 255),
        *_audit(),
    ], compound_name=False)


def more_schemas() -> dict[str, SObjectSchema]:
    """The further objects keyed by API name."""
    schemas = [_campaign(), _campaign_member(), _campaign_member_status(),
               *_permission_objects()]
    return {schema.name: schema for schema in schemas}
