"""Run target-salesforce-crm with timing wrappers, to see why a latency-bound run misses its bound.

    python benchmarks/pipeline_probe.py --config cfg.json < input.singer

Behaves exactly like ``python -m target_salesforce_crm`` (same CLI, same code) but wraps, from
the outside and only in this process, three product methods with timers:

* ``SalesforceClient.collections_update``: duration of each collections call as the worker
  thread sees it (emulated latency + emulator work + JSON encode/decode + GIL waits);
* ``Dispatcher.submit``: time the main thread spends blocked because every slot is busy;
* a 2 ms sampler of ``Dispatcher._running``: how full the window of concurrent calls is.

At exit it prints one JSON line prefixed ``PIPELINE_PROBE`` on stderr. Used by
``run.py --profile``; nothing in the product is modified.
"""

from __future__ import annotations

import atexit
import json
import runpy
import sys
import threading
import time
from typing import Any

from target_salesforce_crm import client, delivery

_call_durations: list[float] = []
_submit_blocked = [0.0]
_in_flight_samples: list[int] = []
_dispatchers: list[delivery.Dispatcher] = []
_started = time.perf_counter()
_stop = threading.Event()

_orig_update = client.SalesforceClient.collections_update
_orig_submit = delivery.Dispatcher.submit
_orig_init = delivery.Dispatcher.__init__


def _update(self: client.SalesforceClient, records: list[dict[str, Any]]) -> Any:
    started = time.perf_counter()
    try:
        return _orig_update(self, records)
    finally:
        _call_durations.append(time.perf_counter() - started)


def _submit(self: delivery.Dispatcher, chunk: delivery.Chunk) -> None:
    started = time.perf_counter()
    try:
        _orig_submit(self, chunk)
    finally:
        _submit_blocked[0] += time.perf_counter() - started


def _init(self: delivery.Dispatcher, *args: Any, **kwargs: Any) -> None:
    _orig_init(self, *args, **kwargs)
    _dispatchers.append(self)


def _sampler() -> None:
    while not _stop.wait(0.002):
        if _dispatchers:
            _in_flight_samples.append(_dispatchers[0]._running)


def _report() -> None:
    _stop.set()
    durations = sorted(_call_durations)
    limit = _dispatchers[0].limit if _dispatchers else 0
    active = list(_in_flight_samples)
    # Only the part of the run where calls were being made (drop the start-up and the tail).
    while active and active[0] == 0:
        active.pop(0)
    while active and active[-1] == 0:
        active.pop()

    def pct(q: float) -> float:
        return 1000 * durations[min(len(durations) - 1, int(q * len(durations)))]

    report = {
        "calls": len(durations),
        "call_ms_median": round(pct(0.5), 1) if durations else None,
        "call_ms_p90": round(pct(0.9), 1) if durations else None,
        "call_ms_min": round(1000 * durations[0], 1) if durations else None,
        "concurrency": limit,
        "mean_in_flight": round(sum(active) / len(active), 2) if active else None,
        "share_all_slots_busy": round(sum(1 for s in active if s >= limit) / len(active), 3)
        if active else None,
        "main_thread_blocked_in_submit_s": round(_submit_blocked[0], 2),
        "wall_s": round(time.perf_counter() - _started, 2),
    }
    print("PIPELINE_PROBE " + json.dumps(report), file=sys.stderr, flush=True)


def main() -> None:
    client.SalesforceClient.collections_update = _update  # type: ignore[method-assign]
    delivery.Dispatcher.submit = _submit  # type: ignore[method-assign]
    delivery.Dispatcher.__init__ = _init  # type: ignore[method-assign]
    threading.Thread(target=_sampler, daemon=True, name="pipeline-probe").start()
    atexit.register(_report)
    sys.argv[0] = "target-salesforce-crm"
    runpy.run_module("target_salesforce_crm", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
