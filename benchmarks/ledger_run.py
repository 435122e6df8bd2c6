"""skip_unchanged end to end: what re-running an unchanged (or 1% changed) stream costs.

    python benchmarks/ledger_run.py            # 1,000,000 profiles
    python benchmarks/ledger_run.py --quick    # 200,000 profiles

Not a timed test: it prints figures for benchmarks/RESULTS.md. It reuses run.py's data (the
same XDM-shaped profiles, cached in ``benchmarks/.work/``) and its emulator process, and runs
the real CLI (``python -m target_salesforce_crm``, ``write_api: collections``) four times on
one SQLite ledger:

1. baseline: the stream without the ledger (``skip_unchanged`` off), for reference;
2. first: ``skip_unchanged`` on an empty ledger: everything is sent and recorded;
3. unchanged: the same stream again: targets 0 records sent, at most 3 API calls (token,
   describe), CPU per record no higher than the first run's, peak RSS < 200 MB;
4. 1% changed: one segment status changed in every 100th profile: targets <= 1% of the
   records sent, each with the changed field only (bytes per record against a full update).

Per run: records and bytes the emulator received in collections calls, API calls (emulator
stats), wall time, CPU (user+sys of the target process, ``os.wait4``) per record, peak RSS; and
the ledger's size on disk after the first run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import run as bench  # noqa: E402 - run.py's data, emulator process and process runner

RSS_LIMIT_MB = 200


def changed_input(dataset: bench.Dataset, workdir: Path, every: int = 100) -> tuple[Path, int]:
    """The dataset's input with one segment status changed in every ``every``-th profile."""
    path = workdir / f"profiles_{dataset.n}_changed_{every}.singer"
    changed = 0
    tmp = path.with_suffix(".tmp")
    with dataset.input_path.open(encoding="utf-8") as source, \
            tmp.open("w", encoding="utf-8") as out:
        records = 0
        for line in source:
            message = json.loads(line)
            if message["type"] == "RECORD":
                records += 1
                if records % every == 0:
                    ups = message["record"]["segmentMembership"]["ups"]
                    segment = next(iter(ups))
                    status = ups[segment]["status"]
                    statuses = bench.STATUSES
                    ups[segment]["status"] = statuses[(statuses.index(status) + 1) % 3]
                    changed += 1
                    out.write(json.dumps(message, separators=(",", ":")) + "\n")
                    continue
            out.write(line)
    tmp.replace(path)
    return path, changed


def run_once(label: str, emu: bench.EmulatorProcess, input_path: Path, n: int, workdir: Path,
             ledger_url: str | None) -> dict[str, Any]:
    rundir = workdir / f"ledger_run_{label}"
    shutil.rmtree(rundir, ignore_errors=True)
    rundir.mkdir(parents=True)
    config_path = bench.target_config(emu, rundir, concurrency=4)
    config = json.loads(config_path.read_text())
    config["write_api"] = "collections"  # calls and bytes of collections; Bulk is run.py's
    if ledger_url:
        config.update(skip_unchanged=True, ledger_url=ledger_url)
    config_path.write_text(json.dumps(config, indent=2))
    emu.set_latency(0)
    before = emu.stats()
    wall, cpu, rss_kb, code, _ = bench.run_process(
        [bench.PYTHON, "-m", "target_salesforce_crm", "--config", str(config_path)],
        input_path, rundir / "stdout.txt", rundir / "stderr.txt", rundir)
    after = emu.stats()
    if code != 0:
        raise SystemExit(f"{label}: exit {code}; see {rundir / 'stderr.txt'}")
    api = bench.api_delta(before, after)
    report = json.loads((rundir / "report.json").read_text())
    sent = api["records"]
    result = {
        "label": label, "n": n, "wall": wall, "cpu": cpu, "rss_mb": rss_kb / 1024,
        "sent": sent, "bytes": after["collections_bytes"] - before["collections_bytes"],
        "api": api, "totals": report["totals"],
    }
    bench.log(f"{label:<10} sent {sent:>9,} records, {api['api_calls'] + api['token']} API "
              f"calls, {wall:6.1f} s wall, {cpu / n * 1e6:5.1f} us CPU/record, "
              f"{result['rss_mb']:.0f} MB RSS")
    return result


def ledger_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*") if p.is_file())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200,000 profiles")
    parser.add_argument("--records", type=int, help="number of profiles (overrides --quick)")
    parser.add_argument("--workdir", type=Path, default=HERE / ".work")
    args = parser.parse_args(argv)
    n = args.records or (200_000 if args.quick else 1_000_000)
    workdir = args.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    dataset = bench.generate(n, workdir)
    changed_path, changed = changed_input(dataset, workdir)
    ledger_path = workdir / f"ledger_{n}.sqlite"
    for stale in workdir.glob(ledger_path.name + "*"):
        stale.unlink()
    ledger_url = f"sqlite:///{ledger_path}"

    results = []
    emu = bench.EmulatorProcess(dataset, workdir)
    try:
        results.append(run_once("baseline", emu, dataset.input_path, n, workdir, None))
        results.append(run_once("first", emu, dataset.input_path, n, workdir, ledger_url))
        size = ledger_size(ledger_path)
        results.append(run_once("unchanged", emu, dataset.input_path, n, workdir, ledger_url))
        results.append(run_once("changed1%", emu, changed_path, n, workdir, ledger_url))
    finally:
        emu.stop()

    by = {r["label"]: r for r in results}
    full_bytes = by["first"]["bytes"] / max(by["first"]["sent"], 1)
    delta_bytes = by["changed1%"]["bytes"] / max(by["changed1%"]["sent"], 1)
    print(f"# skip_unchanged, {n:,} profiles ({time.perf_counter() - started:.0f} s in all)\n")
    print("| run | records sent | API calls (token+describe+collections) | wall s | "
          "CPU us/record | peak RSS MB | bytes sent/record |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in results:
        api = r["api"]
        calls = api["token"] + api["describe"] + api["collections"]
        per_record = r["bytes"] / r["sent"] if r["sent"] else 0
        print(f"| {r['label']} | {r['sent']:,} | {calls:,} | {r['wall']:.1f} | "
              f"{r['cpu'] / n * 1e6:.1f} | {r['rss_mb']:.0f} | {per_record:.0f} |")
    print()
    unchanged, first = by["unchanged"], by["first"]
    api_unchanged = sum(unchanged["api"][k] for k in ("token", "describe", "collections"))
    checks = [
        ("unchanged: records sent", unchanged["sent"] == 0, f"{unchanged['sent']}"),
        ("unchanged: API calls <= 3", api_unchanged <= 3, f"{api_unchanged}"),
        ("unchanged: CPU/record <= first run's", unchanged["cpu"] <= first["cpu"],
         f"{unchanged['cpu'] / n * 1e6:.1f} vs {first['cpu'] / n * 1e6:.1f} us"),
        ("unchanged: wall vs first run", True,
         f"{unchanged['wall']:.1f} s vs {first['wall']:.1f} s"),
        (f"peak RSS < {RSS_LIMIT_MB} MB (every run)",
         all(r["rss_mb"] < RSS_LIMIT_MB for r in results),
         ", ".join(f"{r['rss_mb']:.0f}" for r in results)),
        ("1% changed: records sent <= 1%", by["changed1%"]["sent"] <= n // 100,
         f"{by['changed1%']['sent']:,} of {n:,} ({changed:,} changed)"),
        ("1% changed: bytes/record vs a full update", delta_bytes < full_bytes,
         f"{delta_bytes:.0f} vs {full_bytes:.0f} bytes ({delta_bytes / full_bytes:.0%})"),
        ("ledger size on disk after the first run", True,
         f"{size / 1e6:.0f} MB ({size / n:.0f} bytes per record)"),
    ]
    for name, ok, figure in checks:
        print(f"- {name}: {figure} {'(met)' if ok else '(MISSED)'}")
    print(f"\nmachine: {os.cpu_count()} cores; see run.py for the emulator and the data")
    return 0 if all(ok for _, ok, _ in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
