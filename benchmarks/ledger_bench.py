"""What the sync ledger costs per 1,000 records, in the target's own chunk size.

    python benchmarks/ledger_bench.py [--url sqlite:////tmp/bench.sqlite] [--entries 200000]

It fills a ledger with ``--entries`` records of 24 fields (6 mapped fields, 18 segment
statuses), then times, in chunks of 200 over records already in it: an unchanged re-run
(diff only: nothing to send, nothing to record), a re-run where 10% of the records changed one
field (diff + record of the changed ones), a full resync (diff + record of all), and new records
(diff + record). A PostgreSQL URL (``postgresql+psycopg://…``) measures a shared ledger; its
CPU column is this process only. Wall time depends on what else the machine runs; CPU less so.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from target_salesforce_crm.ledger import Ledger, config_fingerprint

ORG = "00D000000000001AAA"
CHUNK = 200
MAPPED = ["LastName", "FirstName", "Email", "Phone", "Title", "MailingCity"]
SEGMENTS = [f"Seg_{n:02d}__c" for n in range(18)]
FINGERPRINTS = {name: config_fingerprint("Contact", name, "v1") for name in MAPPED + SEGMENTS}


def record(n: int, generation: int = 0) -> dict[str, Any]:
    fields: dict[str, Any] = {name: f"{name}-{n}" for name in MAPPED}
    fields["Email"] = f"p{n}-{generation}@example.org"
    fields.update({name: ("Active" if (n + i) % 3 else "Exited") for i, name in
                   enumerate(SEGMENTS)})
    return fields


def chunks(first: int, count: int, make: Callable[[int], dict[str, Any]]) -> list[dict]:
    return [{f"key{n:09d}": make(n) for n in range(start, min(start + CHUNK, first + count))}
            for start in range(first, first + count, CHUNK)]


def timed(label: str, ledger: Ledger, parts: list[dict], *, full: bool = False,
          record_all: bool = True) -> None:
    total = sum(len(part) for part in parts)
    started, cpu_started = time.perf_counter(), time.process_time()
    sent = 0
    for part in parts:
        changes = ledger.diff(ORG, "Contact", part, FINGERPRINTS, full=full)
        landed = [key for key, fields in changes.payloads.items() if fields]
        sent += len(landed)
        if record_all and landed:
            ledger.record(changes, landed)
    per_thousand = 1000 * 1000 / total
    wall = (time.perf_counter() - started) * per_thousand
    cpu = (time.process_time() - cpu_started) * per_thousand
    print(f"{label:<40} {wall:6.1f} ms wall, {cpu:6.1f} ms CPU per 1,000 records "
          f"({sent} of {total} sent)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url")
    parser.add_argument("--entries", type=int, default=200_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        url = args.url or f"sqlite:///{Path(folder) / 'bench.sqlite'}"
        with Ledger.open(url, on_warning=lambda _m: None) as ledger:
            fill_started = time.perf_counter()
            for part in chunks(0, args.entries, record):
                ledger.record(ledger.diff(ORG, "Contact", part, FINGERPRINTS, full=True), part)
            print(f"filled {args.entries} entries in {time.perf_counter() - fill_started:.1f} s")
            sample = 20_000
            base = args.entries // 3
            timed("unchanged (diff only)", ledger, chunks(base, sample, record))
            timed("10% changed one field (diff + record)", ledger,
                  chunks(base, sample, lambda n: record(n, 1 if n % 10 == 0 else 0)))
            timed("full resync (diff + record all)", ledger,
                  chunks(base, sample, record), full=True)
            timed("new records (diff + record all)", ledger,
                  chunks(args.entries, sample, record))


if __name__ == "__main__":
    main()
