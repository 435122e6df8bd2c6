"""The target's JSON config schema, what ``--about`` prints and Meltano reads.

Defaults, allowed values and bounds come from ``settings.py``, where ``parse_settings`` applies
the same ones: each is stated once.
"""

from __future__ import annotations

from singer_sdk import typing as th

from target_salesforce_crm.settings import (
    AUTH_FLOWS,
    CAMPAIGN_EXIT_POLICIES,
    DEFAULT_API_VERSION,
    DEFAULTS,
    MAX_BATCH_SIZE,
    MAX_CAMPAIGN_SEGMENTS,
    MAX_SEGMENT_MAPPINGS,
    MAX_USAGE_PERCENT,
    MIN_BATCH_SIZE,
    MIN_BULK_JOB_TIMEOUT_S,
    MIN_BULK_THRESHOLD,
    MIN_CONCURRENCY,
    MIN_USAGE_PERCENT,
    MOVE_POLICIES,
    OBJECT_TYPES,
    OPERATIONS,
    OVERFLOW_POLICIES,
    SEGMENT_MODELS,
    WRITE_APIS,
)

_MAPPING = th.ObjectType(
    th.Property("source", th.StringType, required=True, description="Path in the record"),
    th.Property("target", th.StringType, required=True, description="Salesforce field API name"),
)
_SEGMENT = th.ObjectType(
    th.Property("segment_id", th.StringType, required=True,
                description="Segment id in the profile"),
    th.Property("mapping_id", th.StringType, required=True,
                description="API name of the segment field (`__c` added if missing), or for "
                "the campaign model a Campaign Id (701...) or name"),
    th.Property("model", th.StringType, allowed_values=list(SEGMENT_MODELS),
                description="This segment's model (default: segment_model)"),
)

CONFIG_SCHEMA = th.PropertiesList(
    th.Property("auth_flow", th.StringType, default=DEFAULTS["auth_flow"],
                allowed_values=list(AUTH_FLOWS),
                description="OAuth grant used to log in"),
    th.Property("username", th.StringType, secret=True,
                description="Salesforce username (password and jwt flows)"),
    th.Property("password", th.StringType, secret=True, description="Password (password flow)"),
    th.Property("security_token", th.StringType, secret=True,
                description="Security token, appended to the password (password flow)"),
    th.Property("client_id", th.StringType, secret=True,
                description="Connected app consumer key"),
    th.Property("client_secret", th.StringType, secret=True,
                description="Connected app consumer secret"),
    th.Property("refresh_token", th.StringType, secret=True,
                description="Refresh token (refresh_token flow); a rotated one is used at once"),
    th.Property("private_key", th.StringType, secret=True,
                description="RSA private key, PEM text (jwt flow: RS256, iss=client_id, "
                "sub=username, aud=login host)"),
    th.Property("domain", th.StringType,
                description="My Domain: a bare name ('acme', 'acme--uat.sandbox') or a host "
                "('acme.my.salesforce.com')"),
    th.Property("login_url", th.StringType,
                description="Explicit token host (https://login.salesforce.com, "
                "https://test.salesforce.com, https://*.my.salesforce.com; http:// only for "
                "loopback hosts such as the local emulator). Default: from domain"),
    th.Property("api_version", th.StringType, default=DEFAULTS["api_version"],
                description=f"REST API version, like {DEFAULT_API_VERSION!r}"),
    th.Property("salesforce_id_type", th.StringType, default=DEFAULTS["salesforce_id_type"],
                allowed_values=list(OBJECT_TYPES), description="Object to write"),
    th.Property("stream_object_types", th.ObjectType(additional_properties=th.StringType),
                description="Per-stream object override, e.g. {\"leads\": \"Lead\"}"),
    th.Property("operation", th.StringType, default=DEFAULTS["operation"],
                allowed_values=list(OPERATIONS),
                description="update: by Salesforce Id; upsert: by external_id_field, creating "
                "missing records"),
    th.Property("id_source", th.StringType, default=DEFAULTS["id_source"],
                description="Path of the Salesforce Id in the record"),
    th.Property("external_id_field", th.StringType,
                description="upsert: the Salesforce External ID field"),
    th.Property("external_id_source", th.StringType,
                description="upsert: the record path holding the external id value"),
    th.Property("field_mappings", th.ArrayType(_MAPPING),
                description="Source path → Salesforce field. Default: the object's reference "
                "mapping (LastName, FirstName/Company, Email)"),
    th.Property("segment_mappings", th.ArrayType(_SEGMENT),
                description="Segment id → the field (or campaign) receiving its status (max "
                f"{MAX_SEGMENT_MAPPINGS} fields, {MAX_CAMPAIGN_SEGMENTS} campaigns)"),
    th.Property("segment_model", th.StringType, default=DEFAULTS["segment_model"],
                allowed_values=list(SEGMENT_MODELS),
                description="How a segment status is stored: text_area (the status text), "
                "checkbox (true while in the segment), picklist (the status as a picklist "
                "value) or campaign (a Campaign Member with the status)"),
    th.Property("campaign_exit", th.StringType, default=DEFAULTS["campaign_exit"],
                allowed_values=list(CAMPAIGN_EXIT_POLICIES),
                description="campaign model: an exit sets the member's Status (status) or "
                "removes the member (delete)"),
    th.Property("provision_segment_fields", th.BooleanType,
                default=DEFAULTS["provision_segment_fields"],
                description="Create missing segment fields (and campaigns with their statuses) "
                "and grant access through provision_permission_set"),
    th.Property("provision_permission_set", th.StringType,
                default=DEFAULTS["provision_permission_set"],
                description="Permission set that grants the integration user access to "
                "provisioned fields (created and assigned if missing)"),
    th.Property("segment_membership_path", th.StringType,
                default=DEFAULTS["segment_membership_path"],
                description="Where segment memberships live in the record"),
    th.Property("segment_status_values", th.ObjectType(additional_properties=th.StringType),
                description="Optional translation of statuses, e.g. {\"exited\": \"Left\"}"),
    th.Property("string_overflow", th.StringType, default=DEFAULTS["string_overflow"],
                allowed_values=list(OVERFLOW_POLICIES),
                description="Over-long strings: truncate to the field length or reject the "
                "record (emails are never truncated)"),
    th.Property("batch_size", th.IntegerType(minimum=MIN_BATCH_SIZE, maximum=MAX_BATCH_SIZE),
                default=DEFAULTS["batch_size"],
                description="Records per sObject Collections call "
                f"({MIN_BATCH_SIZE}-{MAX_BATCH_SIZE})"),
    th.Property("max_concurrency", th.IntegerType(minimum=MIN_CONCURRENCY),
                default=DEFAULTS["max_concurrency"],
                description="Collections calls in flight at once"),
    th.Property("api_usage_limit_percent",
                th.NumberType(minimum=MIN_USAGE_PERCENT, maximum=MAX_USAGE_PERCENT),
                default=DEFAULTS["api_usage_limit_percent"],
                description="Stop cleanly before the org's daily API usage passes this share"),
    th.Property("rejected_records_path", th.StringType,
                description="JSONL dead-letter file: one line per rejected record"),
    th.Property("run_report_path", th.StringType,
                description="JSON run summary written at the end, also on failure"),
    th.Property("dry_run", th.BooleanType, default=DEFAULTS["dry_run"],
                description="Authenticate, pre-flight and map, but write nothing; the report "
                "forecasts the transport, API calls and Bulk batches per stream"),
    th.Property("write_api", th.StringType, default=DEFAULTS["write_api"],
                allowed_values=list(WRITE_APIS),
                description="collections: sObject Collections; bulk: Bulk API 2.0 ingest; "
                "auto: per stream, by volume (bulk_threshold) and the org's remaining "
                "API and Bulk batch allowances"),
    th.Property("bulk_threshold", th.IntegerType(minimum=MIN_BULK_THRESHOLD),
                default=DEFAULTS["bulk_threshold"],
                description="auto: records per stream per run from which Bulk API 2.0 is used"),
    th.Property("bulk_job_timeout_s", th.IntegerType(minimum=MIN_BULK_JOB_TIMEOUT_S),
                default=DEFAULTS["bulk_job_timeout_s"],
                description="Longest wait for one Bulk job; past it the job is aborted and the "
                "run stops (exit 1, STATE only for what landed)"),
    th.Property("converted_leads", th.StringType, default=DEFAULTS["converted_leads"],
                allowed_values=list(MOVE_POLICIES),
                description="follow: a converted Lead's update goes to its converted Contact; "
                "reject: dead-lettered (CANNOT_UPDATE_CONVERTED_LEAD)"),
    th.Property("merged_records", th.StringType, default=DEFAULTS["merged_records"],
                allowed_values=list(MOVE_POLICIES),
                description="follow: an update of a merged-away record goes to the surviving "
                "record; reject: dead-lettered (ENTITY_IS_DELETED)"),
    th.Property("skip_unchanged", th.BooleanType, default=DEFAULTS["skip_unchanged"],
                description="Send only what changed: a record whose mapped values and segment "
                "statuses all equal what the sync ledger says last landed is not sent; a "
                "changed one carries its changed fields only"),
    th.Property("ledger_url", th.StringType, default=DEFAULTS["ledger_url"], secret=True,
                description="The sync ledger: sqlite:///path (relative to the working "
                "directory; sqlite:////abs/path) or postgresql+psycopg://user:pw@host/db to "
                "share one between machines. Opened only with skip_unchanged or full_resync"),
    th.Property("full_resync", th.BooleanType, default=DEFAULTS["full_resync"],
                description="Send every record in full and rewrite its ledger entries (after "
                "records were changed in Salesforce by others, or the ledger was restored)"),
).to_dict()
