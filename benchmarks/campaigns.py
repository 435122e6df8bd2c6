"""Campaign segments benchmark (issue 13): API calls per 1,000 profiles with 10 campaign
segments, a first run and a re-run with 5% of the statuses changed, against the text-area
model on the same input.

    python benchmarks/campaigns.py            # 100,000 profiles
    python benchmarks/campaigns.py --quick    # 10,000 profiles
    python benchmarks/campaigns.py --records 50000 --repeat 2

What it does
------------
1. Generates N XDM profiles whose ``segmentMembership.ups`` holds each of 10 segments with
   probability ``--membership`` (default 0.3), each with a status realized/existing/exited, and
   a second input with the same profiles where 5% of those (profile, segment) statuses are
   changed to another status (the memberships themselves stay). A Contact seed file gives every
   profile an existing Contact (``Id = make_id("003", n)``), as in run.py.
2. For each model, a fresh emulator process (``python -m target_salesforce_crm.emulator``,
   seeded with the N Contacts and 10 Text Area segment fields), then the real target
   (``python -m target_salesforce_crm``, 0 ms latency, ``max_concurrency`` 4, 200 per chunk)
   on the first input, then on the changed input:
   * ``campaign``: ``segment_model: campaign``, 10 Campaigns seeded through
     ``POST /__emulator__/seed/Campaign``, each with CampaignMemberStatus labels realized /
     existing / exited (``POST /__emulator__/seed/CampaignMemberStatus``); exits keep the
     member with status ``exited`` (``campaign_exit: status``, the default);
   * ``campaign bulk``: the same with ``write_api: bulk`` (Contacts through Bulk API 2.0 jobs;
     memberships synced per batch of 500 result rows). Every other model pins
     ``write_api: collections`` (``auto`` would switch to Bulk past 10,000 records);
   * ``campaign ledger``: the same with ``skip_unchanged`` (a SQLite sync ledger kept from the
     first run to the re-run): memberships are compared as pseudo-fields, and changed records
     are packed into full chunks of 200 across the input;
   * ``text_area x10``: the same 10 segments in 10 Text Area fields;
   * ``text_area x3``: only 3 of the 10 segments mapped, to 3 Text Area fields (run.py's shape).
3. Reads the split of API calls from the run report (``streams.*.collections_calls`` plus
   ``bulk_calls`` = Contact updates; ``campaign_members.calls`` = membership queries and
   writes; ``api`` = all calls by kind) and checks it against the emulator's
   ``/__emulator__/stats`` delta; checks the org afterwards (every wanted membership held with
   the wanted status) and the run (exit 0, N Contacts updated, nothing rejected).

The target for membership calls is ``ceil(changed members / 200)`` writes plus one query per
chunk; the script prints it, and also what writing each chunk's members apart (as before the
writes were pooled across chunks) would reach at best: the sum over chunks of
``ceil(changed members in the chunk / 200)``, from the generated data.
Wall time, target CPU (``os.wait4``), its peak RSS (VmHWM polled from /proc every 50 ms), and
the emulator's CPU and peak RSS are per run; the box is
shared, so compare ratios inside one run. Absolute times drift between runs.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
VENV_PYTHON = ROOT / ".venv-test" / "bin" / "python"

if sys.prefix == sys.base_prefix and VENV_PYTHON.exists() and __name__ == "__main__":
    os.execv(str(VENV_PYTHON), [str(VENV_PYTHON), *sys.argv])

sys.path.insert(0, str(HERE))
import run as bench  # noqa: E402

from target_salesforce_crm.emulator import make_id  # noqa: E402

GEN_VERSION = 1
STREAM = bench.STREAM
CHUNK = bench.CHUNK
CONCURRENCY = 4
CHANGE_SHARE = 0.05
STATUSES = bench.STATUSES
SEGMENT_IDS = [f"c0ffee{n:02d}-5e6d-4c7b-8a9f-{n:012d}" for n in range(1, 11)]
CAMPAIGNS = {seg: f"Bench Campaign {n:02d}" for n, seg in enumerate(SEGMENT_IDS, 1)}
BULK_RESULT_BATCH = 200  # a Bulk job's landed rows: people per membership query
MODELS = ("campaign", "campaign bulk", "campaign ledger", "text_area x10", "text_area x3")
TEXT_FIELDS = {seg: f"Seg_Bench_{n:02d}__c" for n, seg in enumerate(SEGMENT_IDS, 1)}


# --- data ------------------------------------------------------------------------------


@dataclass
class Inputs:
    n: int
    first: Path
    changed: Path
    seed: Path
    memberships: list[dict[str, str]]  # per profile, segment -> status, after the change
    changed_pairs: list[set[str]]  # per profile, segments whose status changed


def generate(n: int, membership: float, workdir: Path) -> Inputs:
    """Write the two Singer inputs and the Contact seed; return the memberships to expect."""
    rng = random.Random(20261213 + n)
    tag = f"{n}_m{int(membership * 100)}_v{GEN_VERSION}"
    first = workdir / f"campaigns_{tag}.singer"
    changed = workdir / f"campaigns_{tag}_changed.singer"
    seed = workdir / f"campaign_contacts_{n}_v{GEN_VERSION}.jsonl"
    dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
    schema = json.loads(json.dumps(bench.SCHEMA))
    header = dumps({"type": "SCHEMA", "stream": STREAM, "schema": schema,
                    "key_properties": ["crmID"]}) + "\n"
    memberships: list[dict[str, str]] = []
    changed_pairs: list[set[str]] = []
    with first.open("w", encoding="utf-8") as out1, changed.open("w", encoding="utf-8") as out2, \
            seed.open("w", encoding="utf-8") as seed_out:
        out1.write(header)
        out2.write(header)
        for n_ in range(1, n + 1):
            record_id = make_id("003", n_)
            first_name, last_name = rng.choice(bench.FIRST), rng.choice(bench.LAST)
            chosen = [s for s in SEGMENT_IDS if rng.random() < membership] \
                or [rng.choice(SEGMENT_IDS)]
            before = {seg: rng.choice(STATUSES) for seg in chosen}
            after, moved = {}, set()
            for seg, status in before.items():
                if rng.random() < CHANGE_SHARE:
                    after[seg] = rng.choice([s for s in STATUSES if s != status])
                    moved.add(seg)
                else:
                    after[seg] = status
            memberships.append(after)
            changed_pairs.append(moved)
            for out, statuses in ((out1, before), (out2, after)):
                record = {
                    "crmID": record_id,
                    "person": {"name": {"firstName": first_name, "lastName": last_name}},
                    "personalEmail": {"address": f"{first_name.lower()}.{last_name.lower()}."
                                                 f"{n_}@example.com"},
                    "segmentMembership": {"ups": {
                        seg: {"status": status, "lastQualificationTime": "2026-12-01T10:00:00Z"}
                        for seg, status in statuses.items()}},
                }
                out.write(dumps({"type": "RECORD", "stream": STREAM, "record": record}) + "\n")
                if n_ % bench.STATE_EVERY == 0 or n_ == n:
                    out.write(dumps({"type": "STATE", "value": {"bookmarks": {
                        STREAM: {"offset": n_}}}}) + "\n")
            seed_out.write(dumps({"Id": record_id, "LastName": f"Old{n_}", "FirstName": "Before",
                                  "Email": f"old{n_}@example.org"}) + "\n")
    return Inputs(n, first, changed, seed, memberships, changed_pairs)


@dataclass
class Expected:
    """Membership call counts the data allows, from the generated profiles."""

    members_by_profile: list[int]
    changed_by_profile: list[int]

    @classmethod
    def of(cls, inputs: Inputs) -> Expected:
        return cls([len(m) for m in inputs.memberships],
                   [len(c) for c in inputs.changed_pairs])

    @property
    def members(self) -> int:
        return sum(self.members_by_profile)

    @property
    def changed(self) -> int:
        return sum(self.changed_by_profile)

    @staticmethod
    def groups(values: list[int], size: int) -> list[int]:
        """Sums over consecutive groups of ``size`` profiles (a chunk, a Bulk result batch)."""
        return [sum(values[i:i + size]) for i in range(0, len(values), size)]

    @staticmethod
    def ceil(count: int) -> int:
        return -(-count // CHUNK)

    def writes_at_best(self, phase: str, group: int, changed_only: bool = False) -> int:
        """Writes when each group of ``group`` people writes its own members, 200 per call;
        ``changed_only``: the groups are of changed people only (the ledger packs them)."""
        values = self.members_by_profile if phase == "first" else self.changed_by_profile
        if changed_only and phase != "first":
            values = [count for count in values if count]
        return sum(self.ceil(count) for count in self.groups(values, group))


# --- emulator and runs -----------------------------------------------------------------


class Emulator(bench.EmulatorProcess):
    """run.py's emulator process, with the 10 segment fields of this benchmark."""

    def __init__(self, n: int, seed: Path, workdir: Path) -> None:
        self.dataset = bench.Dataset(n, seed, seed)
        self.ready = workdir / f"campaign_emulator_{n}.url"
        self.ready.unlink(missing_ok=True)
        self.log_path = workdir / f"campaign_emulator_{n}.log"
        cmd = [bench.PYTHON, "-m", "target_salesforce_crm.emulator", "--port", "0",
               "--ready-file", str(self.ready), "--seed", f"Contact={seed}",
               "--daily-api-limit", "100000000", "--latency-ms", "0"]
        for name in TEXT_FIELDS.values():
            cmd += ["--segment-field", f"{name}:textarea"]
        started = time.perf_counter()
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=self._log, stderr=subprocess.STDOUT)
        while not self.ready.exists():
            if self.proc.poll() is not None:
                raise RuntimeError(f"emulator exited early; see {self.log_path}")
            if time.perf_counter() - started > 600:
                raise RuntimeError("emulator did not become ready in 600 s")
            time.sleep(0.05)
        self.url = self.ready.read_text(encoding="utf-8").strip()
        self.seed_seconds = time.perf_counter() - started

    def seed_campaigns(self) -> dict[str, str]:
        """10 Campaigns, each with the three status labels; returns segment -> Campaign Id."""
        ids = self.admin("POST", "seed/Campaign", [
            {"Name": name, "IsActive": True} for name in CAMPAIGNS.values()])["ids"]
        self.admin("POST", "seed/CampaignMemberStatus", [
            {"CampaignId": campaign, "Label": label, "SortOrder": 10 + k}
            for campaign in ids for k, label in enumerate(STATUSES)])
        return dict(zip(CAMPAIGNS, ids, strict=True))

    def peak_rss_kb(self) -> int:
        return vm_hwm_kb(self.proc.pid)


@dataclass
class Run:
    model: str
    phase: str  # first, re-run
    n: int
    wall: float = 0.0
    cpu: float = 0.0
    rss_kb: int = 0
    emulator_cpu: float = 0.0
    emulator_rss_kb: int = 0
    other_cpu: float = 0.0
    record_updates: int = 0
    membership_queries: int = 0
    membership_writes: int = 0
    queries: int = 0
    collections: int = 0
    describe: int = 0
    token: int = 0
    bulk: int = 0
    bulk_jobs: int = 0
    skipped: int = 0
    emulator_api_calls: int = 0
    emulator_collections: int = 0
    members: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def total_calls(self) -> int:
        return self.collections + self.bulk + self.queries + self.describe + self.token

    def per_1k(self, calls: int) -> float:
        return 1000 * calls / self.n


def config(emu: Emulator, rundir: Path, model: str, ledger: Path) -> Path:
    if model.startswith("campaign"):
        segments = [{"segment_id": seg, "mapping_id": CAMPAIGNS[seg]} for seg in SEGMENT_IDS]
    else:
        mapped = SEGMENT_IDS if model == "text_area x10" else SEGMENT_IDS[:3]
        segments = [{"segment_id": seg, "mapping_id": TEXT_FIELDS[seg]} for seg in mapped]
    settings = {
        "login_url": emu.url, **bench.CREDENTIALS,
        "salesforce_id_type": "Contact", "id_source": "crmID",
        "segment_mappings": segments,
        "segment_model": "campaign" if model.startswith("campaign") else "text_area",
        "write_api": "bulk" if model == "campaign bulk" else "collections",
        **({"skip_unchanged": True, "ledger_url": f"sqlite:///{ledger}"}
           if model == "campaign ledger" else {}),
        "batch_size": CHUNK, "max_concurrency": CONCURRENCY,
        "rejected_records_path": str(rundir / "rejected.jsonl"),
        "run_report_path": str(rundir / "report.json"),
    }
    path = rundir / "config.json"
    path.write_text(json.dumps(settings, indent=2))
    return path


def vm_hwm_kb(pid: int) -> int:
    """Peak RSS of a live process's own memory (0 once it has exited)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def run_process(cmd: list[str], stdin_path: Path, out_path: Path, err_path: Path,
                cwd: Path) -> tuple[float, float, int, int, float]:
    """run.run_process, but peak RSS polled from /proc/<pid>/status (VmHWM) every 50 ms.

    ``ru_maxrss`` from ``wait4`` is no good here: Linux carries the RSS high-water mark of the
    pre-exec image (a copy of this process, which holds the expected memberships and the org's
    members) into the child's figure, so every child reported at least this process's size.
    """
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    bench.GATE.wait()
    peak = 0
    with stdin_path.open("rb") as fin, out_path.open("wb") as fout, err_path.open("wb") as ferr:
        busy0 = bench.system_busy_seconds()
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, stdin=fin, stdout=fout, stderr=ferr, cwd=cwd, env=env)
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            peak = max(peak, vm_hwm_kb(proc.pid))
            time.sleep(0.05)
        wall = time.perf_counter() - started
        busy = bench.system_busy_seconds() - busy0
    proc.returncode = os.waitstatus_to_exitcode(status)
    return wall, usage.ru_utime + usage.ru_stime, peak, proc.returncode, busy


def run_once(emu: Emulator, model: str, phase: str, input_path: Path, n: int,
             workdir: Path, tag: str, ledger: Path) -> Run:
    rundir = workdir / f"campaigns_{model.replace(' ', '_')}_{phase}_{n}{tag}"
    shutil.rmtree(rundir, ignore_errors=True)
    rundir.mkdir(parents=True)
    cfg = config(emu, rundir, model, ledger)
    emu.admin("POST", "reset-usage", {})
    before, emu_cpu0 = emu.stats(), emu.cpu()
    wall, cpu, rss, rc, busy = run_process(
        [bench.PYTHON, "-m", "target_salesforce_crm", "--config", str(cfg)],
        input_path, rundir / "stdout.jsonl", rundir / "stderr.log", rundir)
    emu_cpu = emu.cpu() - emu_cpu0
    after = emu.stats()
    result = Run(model, phase, n, wall, cpu, rss, emu_cpu, emu.peak_rss_kb(),
                 max(0.0, busy - cpu - emu_cpu))
    result.emulator_api_calls = after["api_calls"] - before["api_calls"]
    result.emulator_collections = after["collections_calls"] - before["collections_calls"]
    if rc != 0:
        result.problems.append(f"exit code {rc}; see {rundir / 'stderr.log'}")
    report_path = rundir / "report.json"
    if not report_path.exists():
        result.problems.append("no run report written")
        return result
    report = json.loads(report_path.read_text())
    streams = report.get("streams") or {}
    updated = sum(s.get("updated", 0) for s in streams.values())
    rejected = sum(s.get("rejected", 0) for s in streams.values())
    result.skipped = sum(s.get("skipped_unchanged", 0) for s in streams.values())
    if updated + result.skipped != n or rejected:
        result.problems.append(f"run report: updated={updated:,} skipped={result.skipped:,} "
                               f"rejected={rejected:,}")
    result.record_updates = sum(s.get("collections_calls", 0) + s.get("bulk_calls", 0)
                                for s in streams.values())
    result.bulk_jobs = sum(s.get("bulk_jobs", 0) for s in streams.values())
    result.bulk = sum(s.get("bulk_calls", 0) for s in streams.values())
    api = report.get("api") or {}
    result.collections = api.get("collections_calls", 0)
    result.queries = api.get("query_calls", 0)
    result.describe = api.get("describe_calls", 0)
    result.token = api.get("token_calls", 0)
    if api.get("bulk_calls", 0) != result.bulk:
        result.problems.append(f"api bulk_calls {api.get('bulk_calls')} != streams' {result.bulk}")
    members = report.get("campaign_members") or {}
    calls = members.get("calls") or {}
    result.membership_queries = calls.get("membership_queries", 0)
    result.membership_writes = calls.get("membership_writes", 0)
    for counts in (members.get("segments") or {}).values():
        for key in ("created", "updated", "removed"):
            result.members[key] = result.members.get(key, 0) + counts.get(key, 0)
    if result.record_updates - result.bulk + result.membership_writes != result.collections:
        result.problems.append(
            f"collections calls {result.collections} != Contact updates {result.record_updates}"
            f" + membership writes {result.membership_writes}")
    if result.collections != result.emulator_collections:
        result.problems.append(f"emulator counted {result.emulator_collections} collections "
                               f"calls, the report {result.collections}")
    bench.log(f"  {model:<14} {phase:<7} N={n:,}  {wall:6.1f}s  cpu {cpu:6.1f}s  "
              f"rss {rss / 1024:6.1f} MB  emu cpu {emu_cpu:6.1f}s  updates "
              f"{result.record_updates}  member queries {result.membership_queries}  "
              f"member writes {result.membership_writes}"
              + (f"  PROBLEMS: {result.problems}" if result.problems else ""))
    return result


def check_members(emu: Emulator, campaign_ids: dict[str, str], inputs: Inputs) -> list[str]:
    """Every wanted (Contact, Campaign) pair is a member with the wanted status, none else."""
    segment_of = {campaign: seg for seg, campaign in campaign_ids.items()}
    held = {(m["ContactId"], segment_of.get(m["CampaignId"])): m["Status"]
            for m in emu.admin("GET", "records/CampaignMember")}
    wanted = {(make_id("003", n_ + 1), seg): status
              for n_, statuses in enumerate(inputs.memberships)
              for seg, status in statuses.items()}
    if held == wanted:
        return []
    wrong = sum(1 for pair, status in wanted.items() if held.get(pair) != status)
    return [f"org holds {len(held):,} members, {wrong:,} of the {len(wanted):,} wanted "
            "ones missing or with another status"]


def run_model(model: str, inputs: Inputs, workdir: Path, tag: str) -> list[Run]:
    emu = Emulator(inputs.n, inputs.seed, workdir)
    ledger = workdir / f"campaign_ledger_{inputs.n}{tag}.sqlite"
    ledger.unlink(missing_ok=True)
    try:
        campaign_ids = emu.seed_campaigns() if model.startswith("campaign") else {}
        runs = [run_once(emu, model, "first", inputs.first, inputs.n, workdir, tag, ledger),
                run_once(emu, model, "re-run", inputs.changed, inputs.n, workdir, tag, ledger)]
        if model.startswith("campaign"):
            runs[-1].problems += check_members(emu, campaign_ids, inputs)
    finally:
        emu.stop()
    return runs


# --- report ------------------------------------------------------------------------------


def print_table(runs: list[Run]) -> None:
    header = (f"{'model':<15} {'run':<8} {'skipped':>7} {'jobs':>4} {'updates':>8} "
              f"{'m.query':>8} {'m.write':>8} "
              f"{'other q':>7} {'all/1k':>7} {'upd/1k':>7} {'mq/1k':>6} {'mw/1k':>6} "
              f"{'created':>8} {'updated':>8} {'wall s':>7} {'CPU s':>6} {'RSS MB':>7} "
              f"{'emu CPU s':>9} {'emu MB':>7} {'other':>5}")
    print(header)
    print("-" * len(header))
    for r in runs:
        other_queries = r.queries - r.membership_queries
        print(f"{r.model:<15} {r.phase:<8} {r.skipped:>7,} {r.bulk_jobs:>4} "
              f"{r.record_updates:>8,} "
              f"{r.membership_queries:>8,} "
              f"{r.membership_writes:>8,} {other_queries:>7} {r.per_1k(r.total_calls):7.2f} "
              f"{r.per_1k(r.record_updates):7.2f} {r.per_1k(r.membership_queries):6.2f} "
              f"{r.per_1k(r.membership_writes):6.2f} {r.members.get('created', 0):>8,} "
              f"{r.members.get('updated', 0):>8,} {r.wall:7.1f} {r.cpu:6.1f} "
              f"{r.rss_kb / 1024:7.1f} {r.emulator_cpu:9.1f} {r.emulator_rss_kb / 1024:7.0f} "
              f"{r.other_cpu / r.wall if r.wall else 0:5.2f}"
              + ("  !! " + "; ".join(r.problems) if r.problems else ""))


def print_targets(expected: Expected, runs: list[Run]) -> None:
    members = expected.groups(expected.members_by_profile, CHUNK)
    changed = expected.groups(expected.changed_by_profile, CHUNK)
    chunks = len(members)
    print(f"data: {chunks} chunks of {CHUNK}; {expected.members:,} memberships (per chunk: "
          f"median {statistics.median(members):.0f}, {min(members)}-{max(members)}); re-run: "
          f"{expected.changed:,} changed ({100 * expected.changed / expected.members:.1f}%; "
          f"per chunk: median {statistics.median(changed):.0f}, {min(changed)}-{max(changed)};"
          f" {sum(1 for c in changed if c)} of {chunks} chunks have a change)")
    print()
    print("membership calls against the target (ceil(changed members / 200) writes + one "
          "query per chunk of 200):")
    for r in runs:
        if not r.model.startswith("campaign"):
            continue
        to_write = expected.members if r.phase == "first" else expected.changed
        target_writes = expected.ceil(to_write)
        met = r.membership_writes <= target_writes and r.membership_queries <= chunks
        group = BULK_RESULT_BATCH if r.model == "campaign bulk" else CHUNK
        packed = " changed" if r.model == "campaign ledger" and r.phase != "first" else ""
        print(f"  [{'MET ' if met else 'MISS'}] {r.model} {r.phase}: {to_write:,} members to "
              f"write -> target {target_writes:,} writes + {chunks} queries; measured "
              f"{r.membership_writes:,} writes + {r.membership_queries:,} queries; unpooled, "
              f"writing each group of {group}{packed} people's members apart, at best "
              f"{expected.writes_at_best(r.phase, group, r.model == 'campaign ledger'):,} "
              "writes"
              + (" (consecutive groups; Bulk results come shuffled, so about)"
                 if group != CHUNK else ""))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=None, metavar="N",
                        help="profiles (default 100000; --quick: 10000)")
    parser.add_argument("--quick", action="store_true", help="10,000 profiles")
    parser.add_argument("--membership", type=float, default=0.3,
                        help="probability a profile holds each of the 10 segments (default 0.3)")
    parser.add_argument("--repeat", type=int, default=1,
                        help="repeat every model (first run + re-run) this many times")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--no-wait", action="store_true",
                        help="do not wait for other processes to go quiet before each run")
    parser.add_argument("--workdir", type=Path, default=HERE / ".work")
    args = parser.parse_args(argv)
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    n = args.records or (10_000 if args.quick else 100_000)
    bench.GATE.max_wait, bench.GATE.budget = (0.0, 0.0) if args.no_wait else (20.0, 300.0)
    workdir = args.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()

    print("# Campaign segments (issue 13): API calls per 1,000 profiles, campaign vs text area")
    for line in bench.machine_info():
        print(line)
    print(f"command: python benchmarks/campaigns.py {' '.join(sys.argv[1:])}".rstrip())
    print(f"N = {n:,} profiles, 10 segments each held with p = {args.membership}; re-run with "
          f"{100 * CHANGE_SHARE:.0f}% of statuses changed; 0 ms, max_concurrency {CONCURRENCY}, "
          f"{CHUNK} per chunk; {args.repeat} repeat(s)")
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print()
    inputs = generate(n, args.membership, workdir)
    expected = Expected.of(inputs)
    runs: list[Run] = []
    for rep in range(args.repeat):
        for model in args.models:
            runs += run_model(model, inputs, workdir, f"_r{rep + 1}")

    print("updates = Contact update calls (collections; Bulk API calls for campaign bulk, in "
          "jobs); m.query / m.write = membership queries / writes (run report "
          "campaign_members.calls);")
    print("other q = the other queries (pre-flight: Campaigns, their statuses); all/1k = every "
          "API call (collections + queries + describe + token)")
    print("per 1,000 profiles; created / updated = members; CPU s and RSS MB = the target "
          "process (user+sys, peak RSS); emu = the emulator process;")
    print("other = cores used by other processes during the run.")
    print()
    print_table(runs)
    print()
    print_targets(expected, runs)
    failures = [r for r in runs if r.problems]
    print(f"every run correct (exit 0, N updated, none rejected, calls add up, members as "
          f"wanted): {'yes' if not failures else f'NO, {len(failures)} with problems'}")
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"total wall time: {time.perf_counter() - started:.0f} s "
          f"(of which {bench.GATE.waited:.0f} s waiting for other processes to go quiet)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
