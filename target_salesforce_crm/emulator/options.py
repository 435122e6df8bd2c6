"""Behaviour switches of the emulated org, settable at run time (`Org.set_options`,
`POST /__emulator__/options`, `Emulator.set_options`, CLI flags)."""

from __future__ import annotations

from typing import Any

QUERY_BATCH_SIZE = 2000  # rows per query page unless Sforce-Query-Options asks for fewer
MAX_URI_BYTES = 16384


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


# switches settable through `Org.set_options` (admin `POST /__emulator__/options`, CLI flags)
OPTIONS: dict[str, Any] = {
    "query_batch_size": _positive_int,
    "max_uri_bytes": _positive_int,
    # "View and Edit Converted Leads" permission: converted Leads accept updates (§2.2)
    "converted_lead_edits": lambda value: isinstance(value, bool),
    # the error for an Id that is neither live nor in the Recycle Bin (purged, or never was)
    "missing_record_error": lambda value: value in ("ENTITY_IS_DELETED",
                                                    "INVALID_CROSS_REFERENCE_KEY"),
    # a CampaignMember.Status that is not one of its campaign's labels (§3.4, unverified)
    "unknown_status": lambda value: value in ("reject", "default", "store"),
}
