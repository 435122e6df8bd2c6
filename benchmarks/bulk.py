"""Bulk API 2.0 benchmark: what 1,000,000 profiles cost through ``write_api: auto`` against
``write_api: collections``, and how well a dry run forecasts it.

From the repository root, with the dev extra installed (matplotlib draws the chart):

    python benchmarks/bulk.py            # 1,000,000 profiles by auto; collections on 200,000
    python benchmarks/bulk.py --quick    # 100,000 by auto; collections on 50,000 (~3 minutes)

What it does (data, emulator process and quiet gate are ``benchmarks/run.py``'s: XDM profiles
with 1-3 of 3 segments, each updating a seeded Contact; the emulator is a separate process):

1. a dry run of the large input with ``write_api: auto`` on the fresh org: the forecast of API
   calls, Bulk jobs and batches from the run report, its polls at the default processing rate
   (the org has no completed job to read a rate from);
2. the large input with ``write_api: bulk``; then a second dry run by ``auto``, which reads the
   org's rate from the latest job of that run (``bulk_forecast`` in the report); then by
   ``write_api: auto`` (default ``bulk_threshold``: the records before it are held and travel
   in the first Bulk job with the rest), measured against that forecast; then twice by
   ``auto`` with ``skip_unchanged`` on one SQLite ledger: on an empty ledger, and unchanged;
3. the small input with ``write_api: collections`` and again with ``auto``: the same records both
   ways, for wall time and CPU per record at the same emulator settings (``--latency-ms``,
   default 0, and ``--concurrency``, default 4). Collections cost exactly ceil(N/200) calls plus
   a token and a describe, so the figure for the large N is that formula (checked on the small);
4. collections at 250 ms latency with ``max_concurrency`` 1, 4 and 8 on 20,000 records: records/s
   against the latency bound 200 x concurrency / 0.25 s.

Per run: API calls from the emulator's ``/__emulator__/stats`` (token requests, describe,
collections, Bulk calls by kind, and the rest: ``limits``), wall time, CPU (user+sys of the
target, ``os.wait4``), peak RSS sampled from ``/proc/<pid>/status`` every 0.2 s (and
``ru_maxrss``), and correctness (exit 0, every record updated, none rejected, STATE emitted).
The chart ``benchmarks/api_calls.png`` (``--quick``: ``benchmarks/.work/api_calls_quick.png``)
shows the API calls per large N (1,000,000) by ``write_api`` and the records/s against the
latency bound.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import run as base  # benchmarks/run.py: data, emulator process, quiet gate

HERE = base.HERE
CHART = HERE / "api_calls.png"
PER_MILLION = 1_000_000
CALLS_TARGET = 60
RSS_TARGET_MB = 200
CONCURRENCY_N = 20_000
CONCURRENCY_LATENCY_MS = 250


@dataclass
class Measured:
    label: str
    n: int
    wall: float = 0.0
    cpu: float = 0.0
    peak_rss_mb: float = 0.0
    rss_samples: list[tuple[float, float]] = field(default_factory=list)
    calls: dict[str, int] = field(default_factory=dict)
    report: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    startup_wall: float = 0.0  # of a schema-only run at the same latency (for net_rate)

    @property
    def total_calls(self) -> int:
        return self.calls.get("total", 0)

    @property
    def cpu_us_per_record(self) -> float:
        return 1e6 * self.cpu / self.n if self.n else 0.0

    @property
    def rate(self) -> float:
        return self.n / self.wall if self.wall else 0.0

    @property
    def net_rate(self) -> float:
        """Records/s without the fixed start-up (interpreter, imports, token, describe)."""
        return self.n / (self.wall - self.startup_wall) if self.wall > self.startup_wall \
            else self.rate


def call_breakdown(before: dict[str, Any], after: dict[str, Any]) -> dict[str, int]:
    """API calls between two emulator stats: by kind, and the total (REST calls + token)."""
    bulk = {name: after["bulk"][name] - before["bulk"][name] for name in after["bulk"]}
    describe = sum(after["describe_calls"].values()) - sum(before["describe_calls"].values())
    rest = after["api_calls"] - before["api_calls"]
    collections = after["collections_calls"] - before["collections_calls"]
    token = after["token_requests"] - before["token_requests"]
    return {
        "token": token, "describe": describe, "collections": collections,
        "bulk": bulk["calls"], "job_create": bulk["jobs_created"], "upload": bulk["uploads"],
        "close": bulk["closes"], "poll": bulk["polls"], "results": bulk["result_reads"],
        "job_list": bulk["lists"], "abort": bulk["aborts"],
        "limits_and_other": rest - describe - collections - bulk["calls"],
        "total": rest + token, "bulk_batches": bulk["batches"],
        "bulk_rows": bulk["rows_processed"], "collections_records":
            after["collections_records"] - before["collections_records"],
    }


def sample_rss(pid: int, samples: list[tuple[float, float]], done: threading.Event) -> None:
    started = time.perf_counter()
    while not done.wait(0.2):
        try:
            with open(f"/proc/{pid}/status", encoding="ascii") as status:
                kb = next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
        except (OSError, StopIteration):
            return
        samples.append((time.perf_counter() - started, kb / 1024))


def run_target(emu: base.EmulatorProcess, dataset: base.Dataset, workdir: Path, label: str, *,
               latency_ms: int, concurrency: int, **settings: Any) -> Measured:
    """One run of the real CLI, fed from the dataset's file, measured from outside."""
    rundir = workdir / f"bulk_{label.replace(' ', '_').replace(',', '')}_{dataset.n}"
    shutil.rmtree(rundir, ignore_errors=True)
    rundir.mkdir(parents=True)
    config_path = base.target_config(emu, rundir, concurrency)
    config_path.write_text(json.dumps({**json.loads(config_path.read_text()), **settings}))
    emu.set_latency(latency_ms)  # also resets the org's daily usage
    before = emu.stats()
    base.GATE.wait()
    result = Measured(label, dataset.n)
    done = threading.Event()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with dataset.input_path.open("rb") as fin, (rundir / "stdout.jsonl").open("wb") as out, \
            (rundir / "stderr.log").open("wb") as err:
        started = time.perf_counter()
        proc = subprocess.Popen([base.PYTHON, "-m", "target_salesforce_crm", "--config",
                                 str(config_path)], stdin=fin, stdout=out, stderr=err,
                                cwd=rundir, env=env)
        sampler = threading.Thread(target=sample_rss, args=(proc.pid, result.rss_samples, done))
        sampler.start()
        _, status, usage = os.wait4(proc.pid, 0)
        result.wall = time.perf_counter() - started
        done.set()
        sampler.join()
    code = os.waitstatus_to_exitcode(status)
    result.cpu = usage.ru_utime + usage.ru_stime
    result.peak_rss_mb = max([usage.ru_maxrss / 1024, *(mb for _, mb in result.rss_samples)])
    result.calls = call_breakdown(before, emu.stats())
    report_path = rundir / "report.json"
    result.report = json.loads(report_path.read_text()) if report_path.exists() else {}
    stream = next(iter((result.report.get("streams") or {}).values()), {})
    if code != 0:
        result.problems.append(f"exit code {code}; see {rundir / 'stderr.log'}")
    done_key = "would_send" if settings.get("dry_run") else \
        "skipped_unchanged" if label.endswith(", unchanged") else "updated"
    if dataset.n and (stream.get(done_key) != dataset.n or stream.get("rejected")):
        result.problems.append(f"report: {done_key}={stream.get(done_key)} "
                               f"rejected={stream.get('rejected')}")
    if not settings.get("dry_run") and dataset.n \
            and not (rundir / "stdout.jsonl").read_text().strip():
        result.problems.append("no STATE emitted")
    base.log(f"  {label:<34} N={dataset.n:>9,}  {result.wall:7.1f}s  {result.rate:8,.0f} rec/s"
             f"  cpu {result.cpu:6.1f}s  peak rss {result.peak_rss_mb:6.1f} MB  calls "
             f"{result.total_calls:,}" + (f"  PROBLEMS: {result.problems}"
                                          if result.problems else ""))
    return result


def forecast_of(dry: Measured) -> dict[str, Any]:
    """The dry run's forecast: calls it made that a real run makes too (token, describe, the
    look at the Bulk batch allowance: all it made but those to find the org's processing rate)
    plus those it reports it would make, and the Bulk batches; the rate it assumed."""
    stream = next(iter(dry.report["streams"].values()))
    section = dry.report.get("bulk_forecast") or {}
    made = section.get("calls_made", 0)
    rate = next(iter((section.get("rates") or {}).values()), {})
    return {"calls": dry.total_calls - made + stream["collections_calls"] + stream["bulk_calls"],
            "collections": stream["collections_calls"], "bulk_calls": stream["bulk_calls"],
            "jobs": stream["bulk_jobs"], "batches": stream["bulk_batches"],
            "polls": sum(job["polls"] for job in section.get("jobs", ())),
            "calibration_calls": made, "rate": rate.get("rows_per_second"),
            "rate_from": rate.get("from")}


def within(forecast: float, measured: float, share: float = 0.05) -> bool:
    return abs(forecast - measured) <= share * measured


def collections_calls(n: int) -> int:
    """Collections calls for N records: ceil(N/200), plus one token and one describe."""
    return math.ceil(n / base.CHUNK) + 2


def draw_chart(path: Path, auto: Measured, bulk: Measured, unchanged: Measured,
               concurrency: list[Measured]) -> None:
    import matplotlib  # noqa: PLC0415 - a dev dependency, only for the chart

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    figure, (calls_axis, rate_axis) = plt.subplots(1, 2, figsize=(11, 4.4))
    labels = ["collections\n(ceil(N/200)+2)", "auto\n(first records\nheld, then Bulk)",
              "bulk\n(Bulk only)", "unchanged\nre-run with\nskip_unchanged"]
    values = [collections_calls(auto.n), auto.total_calls, bulk.total_calls,
              unchanged.total_calls]
    bars = calls_axis.bar(labels, values, color=["#8a8a8a", "#1f77b4", "#17becf", "#2ca02c"])
    calls_axis.set_yscale("log")
    calls_axis.set_ylim(1, values[0] * 3)
    calls_axis.bar_label(bars, labels=[f"{value:,.0f}" for value in values], padding=3)
    calls_axis.set_title(f"API calls per {auto.n:,} profiles", fontsize=10)
    calls_axis.set_ylabel("API calls (log scale)")
    calls_axis.tick_params(axis="x", labelsize=8)

    positions = range(len(concurrency))
    bounds = [base.CHUNK * (run.calls.get("concurrency") or 1) / (CONCURRENCY_LATENCY_MS / 1000)
              for run in concurrency]
    rate_axis.bar([p - 0.2 for p in positions], bounds, width=0.4, color="#d9d9d9",
                  label="latency bound: 200 x concurrency / 0.25 s")
    measured = rate_axis.bar([p + 0.2 for p in positions],
                             [run.net_rate for run in concurrency], width=0.4, color="#2ca02c",
                             label="measured (collections), start-up excluded")
    rate_axis.bar_label(measured, labels=[f"{run.net_rate / bound:.0%}" for run, bound
                                          in zip(concurrency, bounds, strict=True)], padding=3)
    rate_axis.set_xticks(list(positions), [f"max_concurrency {run.calls.get('concurrency')}"
                                           for run in concurrency])
    rate_axis.set_ylabel("records/s")
    rate_axis.set_title(f"Collections at {CONCURRENCY_LATENCY_MS} ms latency, "
                        f"{CONCURRENCY_N:,} records", fontsize=10)
    rate_axis.legend(fontsize=8, loc="upper left")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)


def verdict(ok: bool) -> str:
    return "MET " if ok else "MISS"


def forecast_lines(name: str, dry: Measured, auto: Measured) -> list[str]:
    forecast, calls = forecast_of(dry), auto.calls
    return [
        f"  {name}: {forecast['rate'] or 0:,} rows/s ({forecast['rate_from']}; "
        f"{forecast['calibration_calls']} call(s) made to find it, not counted)",
        f"    API calls {forecast['calls']} vs {auto.total_calls} "
        f"({(forecast['calls'] - auto.total_calls) / auto.total_calls:+.1%}); collections "
        f"{forecast['collections']} vs {calls['collections']}; Bulk calls "
        f"{forecast['bulk_calls']} vs {calls['bulk']}; jobs {forecast['jobs']} vs "
        f"{calls['job_create']}; polls {forecast['polls']} vs {calls['poll']}; batches "
        f"{forecast['batches']} vs {calls['bulk_batches']}",
        f"    [{verdict(within(forecast['calls'], auto.total_calls))}] calls within 5%",
        f"    [{verdict(within(forecast['batches'], calls['bulk_batches']))}] batches within 5%",
    ]


def summarize(args: argparse.Namespace, dry_cold: Measured, dry: Measured, auto: Measured,
              bulk: Measured, ledger_runs: list[Measured], small_auto: Measured,
              collections: Measured, concurrency: list[Measured]) -> str:
    calls = auto.calls
    first_half = [mb for t, mb in auto.rss_samples if t <= auto.wall / 2]
    second_half = [mb for t, mb in auto.rss_samples if t > auto.wall / 2]
    stream = next(iter(auto.report["streams"].values()))
    lines = [
        f"# Bulk API 2.0 benchmark ({time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())})",
        f"machine: nproc={os.cpu_count()}, python {sys.version.split()[0]}; emulator latency "
        f"{args.latency_ms} ms, max_concurrency {args.concurrency}",
        "",
        f"auto, N={auto.n:,}: {auto.total_calls} API calls = token {calls['token']} + describe "
        f"{calls['describe']} + limits {calls['limits_and_other']} + collections "
        f"{calls['collections']} ({calls['collections_records']:,} records) + Bulk "
        f"{calls['bulk']} (jobs {calls['job_create']}, uploads "
        f"{calls['upload']}, closes {calls['close']}, polls {calls['poll']}, result sets "
        f"{calls['results']}, job list {calls['job_list']}); {calls['bulk_batches']} Bulk "
        f"batches for {calls['bulk_rows']:,} rows",
        f"collections, N={collections.n:,}: {collections.total_calls:,} API calls "
        f"(ceil(N/200)+2 = {collections_calls(collections.n):,}); for N={auto.n:,}: "
        f"{collections_calls(auto.n):,}",
        f"  [{verdict(auto.total_calls <= CALLS_TARGET)}] <= {CALLS_TARGET} API calls for "
        f"{auto.n:,} profiles by auto: {auto.total_calls}",
        f"bulk, N={bulk.n:,}: {bulk.total_calls} API calls = token {bulk.calls['token']} + "
        f"describe {bulk.calls['describe']} + Bulk {bulk.calls['bulk']} (jobs "
        f"{bulk.calls['job_create']}, polls {bulk.calls['poll']}, job list "
        f"{bulk.calls['job_list']}) + other {bulk.calls['limits_and_other']}",
        f"  [{verdict(bulk.total_calls <= CALLS_TARGET)}] <= {CALLS_TARGET} API calls for "
        f"{bulk.n:,} profiles by bulk: {bulk.total_calls}",
        f"skip_unchanged by auto, N={auto.n:,}: first run (empty ledger) "
        f"{ledger_runs[0].total_calls} API calls; unchanged re-run "
        f"{ledger_runs[1].total_calls} (token {ledger_runs[1].calls['token']}, describe "
        f"{ledger_runs[1].calls['describe']}, Bulk {ledger_runs[1].calls['bulk']}, collections "
        f"{ledger_runs[1].calls['collections']})",
        f"  [{verdict(collections.total_calls == collections_calls(collections.n))}] collections"
        f" calls = ceil(N/200)+2",
        "",
        f"{'run':<30} {'N':>9} {'wall s':>8} {'rec/s':>8} {'CPU us/rec':>10} "
        f"{'peak RSS MB':>11} {'calls':>6}",
    ]
    for run in (auto, bulk, *ledger_runs, small_auto, collections, dry_cold, dry):
        lines.append(f"{run.label:<30} {run.n:>9,} {run.wall:8.1f} {run.rate:8,.0f} "
                     f"{run.cpu_us_per_record:10.1f} {run.peak_rss_mb:11.1f} "
                     f"{run.total_calls:6,}")
    lines += [
        f"  CPU per record, Bulk path vs collections at N={collections.n:,}: "
        f"{small_auto.cpu_us_per_record:.1f} vs {collections.cpu_us_per_record:.1f} us "
        f"({small_auto.cpu_us_per_record / collections.cpu_us_per_record:.2f}x); at "
        f"N={auto.n:,} by auto: {auto.cpu_us_per_record:.1f} us, by bulk: "
        f"{bulk.cpu_us_per_record:.1f} us",
        f"  wall time at N={collections.n:,}: auto {small_auto.wall:.1f} s, collections "
        f"{collections.wall:.1f} s; at N={auto.n:,}: auto {auto.wall:.1f} s, bulk {bulk.wall:.1f}"
        f" s, collections at its measured rate {auto.n / collections.rate:.1f} s",
        f"  [{verdict(auto.peak_rss_mb < RSS_TARGET_MB)}] peak RSS < {RSS_TARGET_MB} MB and flat:"
        f" {auto.peak_rss_mb:.1f} MB at N={auto.n:,} ({small_auto.peak_rss_mb:.1f} MB at "
        f"N={small_auto.n:,}); sampled max {max(first_half, default=0):.1f} MB in the first half"
        f" of the run, {max(second_half, default=0):.1f} MB in the second",
        "",
        f"dry-run forecast vs measured (N={auto.n:,}, auto; report: {stream['bulk_batches']} "
        "batches):",
        *forecast_lines("calibrated dry run (after the bulk run)", dry, auto),
        *forecast_lines("dry run on the fresh org", dry_cold, auto),
        "",
        f"collections at {CONCURRENCY_LATENCY_MS} ms, N={CONCURRENCY_N:,}:",
    ]
    for run in concurrency:
        bound = base.CHUNK * run.calls["concurrency"] / (CONCURRENCY_LATENCY_MS / 1000)
        lines.append(f"  max_concurrency {run.calls['concurrency']}: {run.rate:,.0f} rec/s = "
                     f"{run.rate / bound:.1%} of {bound:,.0f}; {run.net_rate:,.0f} rec/s = "
                     f"{run.net_rate / bound:.1%} without the {run.startup_wall:.1f} s start-up")
    problems = [f"{run.label}: {run.problems}" for run in (dry_cold, dry, auto, bulk,
                                                          *ledger_runs,
                                                          small_auto, collections, *concurrency)
                if run.problems]
    lines.append(f"  [{verdict(not problems)}] every run correct" +
                 (f": {problems}" if problems else " (exit 0, all updated, none rejected)"))
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="100,000 / 50,000 records")
    parser.add_argument("--latency-ms", type=int, default=0)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--chart", type=Path, default=None)
    args = parser.parse_args()
    large, small = (100_000, 50_000) if args.quick else (PER_MILLION, 200_000)
    chart = args.chart or (HERE / ".work" / "api_calls_quick.png" if args.quick else CHART)
    workdir = HERE / ".work"
    workdir.mkdir(exist_ok=True)
    started = time.perf_counter()
    big_data = base.generate(large, workdir)
    small_data = base.generate(small, workdir)
    conc_data = base.generate(CONCURRENCY_N, workdir)
    emu = base.EmulatorProcess(big_data, workdir)  # its Contacts cover every smaller input too
    common = {"latency_ms": args.latency_ms, "concurrency": args.concurrency}
    try:
        dry_cold = run_target(emu, big_data, workdir, "auto, dry run, fresh org", dry_run=True,
                              **common)
        bulk = run_target(emu, big_data, workdir, "bulk", write_api="bulk", **common)
        dry = run_target(emu, big_data, workdir, "auto, dry run, calibrated", dry_run=True,
                         **common)
        auto = run_target(emu, big_data, workdir, "auto", write_api="auto", **common)
        ledger = workdir / f"bulk_ledger_{large}.sqlite"
        ledger.unlink(missing_ok=True)
        with_ledger = {"write_api": "auto", "skip_unchanged": True,
                       "ledger_url": f"sqlite:///{ledger}"}
        ledger_runs = [run_target(emu, big_data, workdir, f"auto, skip_unchanged, {label}",
                                  **with_ledger, **common)
                       for label in ("first", "unchanged")]
        small_auto = run_target(emu, small_data, workdir, "auto (same N as collections)",
                                write_api="auto", **common)
        collections = run_target(emu, small_data, workdir, "collections",
                                 write_api="collections", **common)
        startup = run_target(emu, base.Dataset(0, base.schema_only_input(workdir), Path()),
                             workdir, "start-up at 250 ms", write_api="collections",
                             latency_ms=CONCURRENCY_LATENCY_MS, concurrency=1)
        concurrency = []
        for level in (1, 4, 8):
            run = run_target(emu, conc_data, workdir, f"collections 250 ms c{level}",
                             write_api="collections", latency_ms=CONCURRENCY_LATENCY_MS,
                             concurrency=level)
            run.calls["concurrency"] = level
            run.startup_wall = startup.wall
            concurrency.append(run)
    finally:
        emu.stop()
    summary = summarize(args, dry_cold, dry, auto, bulk, ledger_runs, small_auto, collections,
                        concurrency)
    draw_chart(chart, auto, bulk, ledger_runs[1], concurrency)
    summary += f"\nchart: {chart}\ntotal wall time {time.perf_counter() - started:.0f} s"
    print(summary)
    (workdir / f"bulk_{large}.txt").write_text(summary + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
