"""`/__emulator__/...` admin endpoints, so subprocess tests and the demo can steer the org.

They need no token, never count as API calls and are never hit by faults.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from . import options
from .lifecycle import ACTIONS

if TYPE_CHECKING:
    from .server import App


def handle_admin(app: App, method: str, path: str, body: bytes) -> tuple[int, Any]:
    """Return (status, JSON payload) for one admin request."""
    parts = [unquote(part) for part in path[len("/__emulator__/"):].strip("/").split("/")]
    org = app.org
    try:
        if parts[0] == "records" and method == "GET" and len(parts) == 2:
            return 200, org.records(parts[1])
        if parts[0] == "records" and method == "GET" and len(parts) == 3:
            record = org.get(parts[1], parts[2])
            if record is None:
                return 404, {"error": f"no {parts[1]} record with Id {parts[2]}"}
            return 200, record
        if parts[0] == "deleted" and method == "GET" and len(parts) == 2:
            return 200, org.records(parts[1], deleted=True)
        if parts[0] == "deleted" and method == "GET" and len(parts) == 3:
            record = org.get(parts[1], parts[2], deleted=True)
            if record is None:
                return 404, {"error": f"no deleted {parts[1]} record with Id {parts[2]}"}
            return 200, record
        if parts == ["stats"] and method == "GET":
            return 200, app.stats()
        if parts == ["received"] and method == "GET":
            with org.lock:
                return 200, list(org.received)
        if parts == ["faults"] and method == "GET":
            return 200, org.faults.as_dict()
        if parts == ["options"] and method == "GET":
            return 200, options.current(org)
        if parts == ["reset-usage"] and method == "POST":
            org.reset_usage()
            return 200, {"api_usage": 0}
        if parts[0] in ("seed", "faults", "options", *ACTIONS) and method == "POST":
            return _post(app, parts, body)
    except ValueError as exc:
        return 404 if parts[0] in ("records", "deleted") else 400, {"error": str(exc)}
    return 404, {"error": f"unknown admin endpoint: {method} {path}"}


def _post(app: App, parts: list[str], body: bytes) -> tuple[int, Any]:
    try:
        payload = json.loads(body or b"null")
    except ValueError as exc:
        return 400, {"error": f"invalid JSON: {exc}"}
    if parts[0] in ACTIONS and len(parts) == 1:
        return 200, ACTIONS[parts[0]](app.org, payload)
    if parts[0] == "options":
        if not isinstance(payload, dict):
            return 400, {"error": "expected a JSON object of options"}
        return 200, options.set_options(app.org, payload)
    if parts[0] == "faults":
        if not isinstance(payload, dict):
            return 400, {"error": "expected a JSON object of fault settings"}
        app.org.set_faults(payload)
        return 200, app.org.faults.as_dict()
    if len(parts) != 2 or not isinstance(payload, list):
        return 400, {"error": "expected POST /__emulator__/seed/{Object} with a JSON list"}
    return 200, {"ids": app.org.seed(parts[1], payload)}
