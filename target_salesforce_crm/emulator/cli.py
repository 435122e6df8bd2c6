"""Command line: `python -m target_salesforce_crm.emulator --port N ...`.

Prints one readiness line (and optionally writes the URL to a file) so scripts
can start the emulator in the background and wait for it without polling ports.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from .auth import ORG_ID
from .faults import BULK_BOOL_FIELDS, BULK_INT_FIELDS, INT_FIELDS, RATE_FIELDS
from .service import FIXTURE_CREDENTIALS, Emulator


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m target_salesforce_crm.emulator",
        description="Local Salesforce org emulator (OAuth, describe, sObject Collections, "
                    "Bulk API 2.0 ingest, SOQL, Campaigns, Tooling API, limits, fault "
                    "injection).",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--segment-field", action="append", dest="segment_fields",
                        metavar="NAME[:KIND]",
                        help="custom field to add to Contact and Lead (repeatable; default "
                             "Seg_Loyal__c): NAME or NAME:textarea is a Text Area (Long), "
                             "NAME:checkbox a Checkbox, NAME:picklist=a|b|c a restricted "
                             "picklist of those values")
    parser.add_argument("--seed", action="append", default=[], metavar="OBJECT=path.jsonl",
                        help="load records (one JSON object per line) before serving; any "
                             "object (Contact, Lead, Campaign, CampaignMember, ...), rows may "
                             "set IsDeleted, MasterRecordId, IsConverted, Converted*")
    parser.add_argument("--ready-file", type=Path, help="write the base URL here once serving")
    parser.add_argument("--tls-cert", type=Path, metavar="FILE",
                        help="serve HTTPS with this PEM certificate (chain)")
    parser.add_argument("--tls-key", type=Path, metavar="FILE",
                        help="PEM private key of --tls-cert (if not in the same file)")
    parser.add_argument("--username", default=FIXTURE_CREDENTIALS["username"])
    parser.add_argument("--password", default=FIXTURE_CREDENTIALS["password"])
    parser.add_argument("--security-token", default=FIXTURE_CREDENTIALS["security_token"])
    parser.add_argument("--client-id", default=FIXTURE_CREDENTIALS["client_id"])
    parser.add_argument("--client-secret", default=FIXTURE_CREDENTIALS["client_secret"])
    parser.add_argument("--refresh-token", action="append", dest="refresh_tokens",
                        metavar="TOKEN", help="valid refresh token (repeatable)")
    parser.add_argument("--rotate-refresh-tokens", action="store_true")
    parser.add_argument("--jwt-public-key-file", type=Path,
                        help="PEM public key or certificate that verifies JWT-bearer assertions")
    parser.add_argument("--org-id", default=ORG_ID, metavar="00D...",
                        help="organization Id in token responses' identity URL (default: a fixed "
                             "one, so runs repeat)")
    parser.add_argument("--generic-login-host", action="store_true",
                        help="behave like login.salesforce.com: refuse client_credentials")
    for name in INT_FIELDS:
        parser.add_argument("--" + name.replace("_", "-"), type=int, default=None)
    for name in RATE_FIELDS:
        parser.add_argument("--" + name.replace("_", "-"), type=float, default=None)
    parser.add_argument("--random-seed", type=int, default=None)
    parser.add_argument("--poison-value", action="append", dest="poison_values", metavar="TEXT",
                        help="refuse with a 400 JSON_PARSER_ERROR any collections body with a "
                             "string value containing TEXT (repeatable)")
    parser.add_argument("--lock-forever-id", action="append", dest="lock_forever_ids",
                        metavar="ID", help="this record always fails UNABLE_TO_LOCK_ROW "
                                           "(repeatable)")
    parser.add_argument("--storage-full-after", type=int, default=None, metavar="N",
                        help="after N more record writes, every write fails "
                             "STORAGE_LIMIT_EXCEEDED (0: full now)")
    parser.add_argument("--instance-url", default=None, metavar="URL",
                        help="instance_url to put in token responses (default: this server)")
    parser.add_argument("--omit-access-token", action="store_const", const=True, default=None,
                        help="token responses leave out access_token")
    parser.add_argument("--request-error-code", default=None, metavar="CODE",
                        help="refuse every collections call with a 400 of this errorCode whose "
                             "message quotes one of the request's values")
    parser.add_argument("--query-batch-size", type=int, default=None, metavar="N",
                        help="at most N rows per query page (default 2000), to exercise paging")
    bulk = parser.add_argument_group("Bulk API 2.0 ingest")
    bulk.add_argument("--bulk-rows-per-second", type=int, default=None, metavar="N",
                      help="rows a job processes per second (default 0: as fast as it goes)")
    bulk.add_argument("--bulk-fail-after-batches", type=int, default=None, metavar="N",
                      help="fail every job after N internal batches of 10,000 rows; rows of "
                           "those batches stay committed (default 0: never)")
    bulk.add_argument("--bulk-batches-remaining", type=int, default=None, metavar="N",
                      help="DailyBulkApiBatches left, at most 15000 (default 15000); 0 refuses "
                           "new jobs and a job that runs out fails")
    bulk.add_argument("--bulk-shuffle-results", action=argparse.BooleanOptionalAction,
                      default=None, help="result rows in random order, from --random-seed "
                                         "(default on)")
    return parser


FAULT_OPTIONS = (*INT_FIELDS, *RATE_FIELDS, "random_seed", "poison_values", "lock_forever_ids",
                 "storage_full_after", "instance_url", "omit_access_token", "request_error_code",
                 *BULK_INT_FIELDS, *BULK_BOOL_FIELDS)


def _read_seed(spec: str) -> tuple[str, list[dict[str, Any]]]:
    object_name, sep, path = spec.partition("=")
    if not sep or not object_name or not path:
        raise ValueError(f"--seed expects OBJECT=path.jsonl, got {spec!r}")
    records = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except ValueError as exc:
                raise ValueError(f"{path}:{number}: invalid JSON: {exc}") from exc
    return object_name, records


def _write_ready_file(path: Path, url: str) -> None:
    """Write atomically so a watcher never reads half a URL."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(url + "\n", encoding="utf-8")
    os.replace(tmp, path)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    faults = {name: getattr(args, name) for name in FAULT_OPTIONS
              if getattr(args, name) is not None}
    try:
        public_key = (args.jwt_public_key_file.read_text(encoding="utf-8")
                      if args.jwt_public_key_file else None)
        emulator = Emulator(
            segment_fields=args.segment_fields if args.segment_fields is not None
            else ("Seg_Loyal__c",),
            username=args.username, password=args.password, security_token=args.security_token,
            client_id=args.client_id, client_secret=args.client_secret,
            refresh_tokens=args.refresh_tokens or ("emulator-refresh-token",),
            rotate_refresh_tokens=args.rotate_refresh_tokens, jwt_public_key=public_key,
            generic_login_host=args.generic_login_host, host=args.host, port=args.port,
            tls_cert=args.tls_cert, tls_key=args.tls_key, org_id=args.org_id, **faults,
        )
        options = {name: getattr(args, name) for name in ("query_batch_size",)
                   if getattr(args, name) is not None}
        emulator.set_options(**options)
        for spec in args.seed:
            object_name, records = _read_seed(spec)
            emulator.seed(object_name, records)
    except (OSError, ValueError) as exc:
        print(f"emulator: {exc}", file=sys.stderr)
        return 2

    stopping = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    emulator.start()
    try:
        if args.ready_file:
            _write_ready_file(args.ready_file, emulator.url)
        print(f"emulator listening on {emulator.url}", flush=True)
        while not stopping.wait(0.5):
            continue
    finally:
        emulator.stop()
    return 0
