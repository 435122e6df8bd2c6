"""Error classification in one place, from the wire contract's error table (§3.3, §6).

Every HTTP answer and every per-record result is sorted into one class, and each class has one
policy: transient → back off and retry; auth → re-authenticate once and replay; quota → stop
the run cleanly; concurrency → back off and lower parallelism; permanent → never retry.
"""

from __future__ import annotations

import enum


class ErrorClass(enum.Enum):
    TRANSIENT = "transient"
    AUTH = "auth"
    QUOTA = "quota"
    CONCURRENCY = "concurrency"
    PERMANENT = "permanent"


TRANSIENT_STATUSES = frozenset({406, 420, 429, 500, 502, 503, 504})
TRANSIENT_RECORD_CODES = frozenset({"UNABLE_TO_LOCK_ROW"})
TRANSIENT_REQUEST_CODES = frozenset(
    {
        "SERVER_UNAVAILABLE", "UNKNOWN_EXCEPTION", "QUERY_TIMEOUT", "REQUEST_RUNNING_TOO_LONG",
        "UNABLE_TO_LOCK_ROW",
    }
)
# Request-level 400s caused by one record's data: splitting the batch isolates the culprit.
DATA_REQUEST_CODES = frozenset(
    {
        "JSON_PARSER_ERROR",
        "INVALID_FIELD",
        "MALFORMED_ID",
        "STRING_TOO_LONG",
        "INVALID_TYPE_ON_FIELD_IN_RECORD",
        "INVALID_EMAIL_ADDRESS",
        "REQUIRED_FIELD_MISSING",
    }
)


def classify_response(status: int, error_code: str | None, message: str | None) -> ErrorClass:
    """Class of a non-2xx REST answer (``error_code`` from the body's ``errorCode``)."""
    text = message or ""
    if status == 401:
        session = error_code in (None, "INVALID_SESSION_ID")
        return ErrorClass.AUTH if session else ErrorClass.PERMANENT
    if error_code == "REQUEST_LIMIT_EXCEEDED":
        if "ConcurrentPerOrgLongTxn" in text or "ConcurrentRequest" in text:
            return ErrorClass.CONCURRENCY
        return ErrorClass.QUOTA
    if status in TRANSIENT_STATUSES or error_code in TRANSIENT_REQUEST_CODES:
        return ErrorClass.TRANSIENT
    return ErrorClass.PERMANENT


def classify_record_error(status_code: str) -> ErrorClass:
    """Class of a per-record error inside a 200 collections answer."""
    if status_code in TRANSIENT_RECORD_CODES:
        return ErrorClass.TRANSIENT
    if status_code == "STORAGE_LIMIT_EXCEEDED":
        return ErrorClass.QUOTA
    return ErrorClass.PERMANENT


class TargetError(Exception):
    """A fatal problem: the run stops with this one message (already free of secrets)."""

    exit_code = 1


class ConfigError(TargetError):
    """The configuration cannot work against this org (found before anything was written)."""


class AuthenticationError(TargetError):
    """The token endpoint refused the credentials, or a fresh token was refused again."""


class ApiLimitReached(TargetError):
    """The org's daily API allocation (or our share of it) is used up; a re-run resumes."""

    exit_code = 3


class RequestFailed(TargetError):
    """A request-level error that retrying cannot fix."""

    def __init__(self, status: int, error_code: str | None, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error_code = error_code

    @property
    def is_data_error(self) -> bool:
        """True when the error comes from one record's data, not from the config or the org."""
        return self.status == 400 and self.error_code in DATA_REQUEST_CODES


class RetriesExhausted(TargetError):
    """Salesforce kept failing transiently past the retry budget."""


class TlsVerificationFailed(TargetError):
    """A host's certificate is not trusted by the CA bundle in use: retrying cannot help."""


class BulkJobFailed(TargetError):
    """A Bulk API 2.0 job could not be created, uploaded or closed, or ended without results."""


class BulkJobTimedOut(TargetError):
    """A Bulk API 2.0 job did not finish within ``bulk_job_timeout_s``; it was aborted."""


class BulkJobAborted(TargetError):
    """A stop signal came while a Bulk job was being filled: the job was aborted unsent."""
