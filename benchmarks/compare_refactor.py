"""CPU of the target before and after the restructure (issue 7), measured in ONE run.

    python benchmarks/compare_refactor.py --old /work/wt-bench-old            # 50k, 3 repeats
    python benchmarks/compare_refactor.py --old ../old --records 100000 --repeat 5

``--old`` is a worktree of the pre-restructure commit (``git worktree add ../old 2ea8ff6``)
with its own test venv (``bash scripts/test.sh --co -q`` there builds ``.venv-test``);
``--also NAME=PATH`` adds more trees the same way (e.g. ``moved=../moved`` at the
restructure commit itself, to tell the move from later features). Each tree's target runs
with its own venv's python (``python -m target_salesforce_crm``, an editable install of
that tree), so each runs its own code; everything else is shared:

* the same generated input and Contact seed (``run.generate``: XDM profiles, 3 text-area
  segments), the same config (0 ms emulated latency, ``max_concurrency`` 4, validation on,
  ``write_api: collections``: since Bulk API 2.0 landed, ``auto`` sends a stream past 10,000
  records through Bulk jobs; trees from before ignore the setting);
* a fresh emulator process for every target run, of THIS tree (the emulator is not what is
  compared, and the old target speaks the same wire contract);
* the baseline: the no-op singer-sdk sink (``benchmarks/noop_target.py``, fastjsonschema
  validator, the stricter of run.py's two baselines) on the same input.

The machine is shared and noisy, so the runs are interleaved: every repeat runs the no-op
sink, then every tree's target, the order rotating by one tree each repeat (old/new,
new/old, ...), so a slow drift of the machine lands on all of them. A target's ratio is its
CPU over the no-op sink's CPU of the same repeat; the table gives each repeat and the median
and spread per tree.
CPU is user+sys of the target process (``os.wait4`` rusage), start-up included.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
VENV_PYTHON = ROOT / ".venv-test" / "bin" / "python"

if sys.prefix == sys.base_prefix and VENV_PYTHON.exists() and __name__ == "__main__":
    os.execv(str(VENV_PYTHON), [str(VENV_PYTHON), *sys.argv])

sys.path.insert(0, str(HERE))
import run as bench  # noqa: E402

LATENCY_MS = 0
CONCURRENCY = 4


def collections_only(make_config: Callable[..., Path]) -> Callable[..., Path]:
    """run.target_config, plus ``write_api: collections``: the path every tree has."""

    def config(*args: Any, **kwargs: Any) -> Path:
        path = make_config(*args, **kwargs)
        settings = json.loads(path.read_text())
        settings["write_api"] = "collections"
        path.write_text(json.dumps(settings, indent=2))
        return path

    return config


bench.target_config = collections_only(bench.target_config)


@dataclass(frozen=True)
class Tree:
    name: str
    root: Path

    @property
    def python(self) -> Path:
        return self.root / ".venv-test" / "bin" / "python"


@dataclass
class Measured:
    """A full run and the start-up run (schema only, no records) made just before it."""

    full: bench.Result
    startup: bench.Result

    def ratio(self, noop: Measured) -> float:
        """CPU of the whole run over the no-op sink's, start-up included in both."""
        return self.full.cpu / noop.full.cpu

    def net_ratio(self, noop: Measured) -> float:
        """CPU per record once started: (full - start-up) over the no-op sink's same."""
        return (self.full.cpu - self.startup.cpu) / (noop.full.cpu - noop.startup.cpu)


def run_tree(tree: Tree, dataset: bench.Dataset, schema_only: Path, workdir: Path,
             rep: int) -> Measured:
    """Start-up, then the full run, of ``tree`` against one fresh emulator; run.run_target's
    checks apply."""
    emu = bench.EmulatorProcess(dataset, workdir)
    own_python = bench.PYTHON
    tag = f"_{tree.name}_r{rep + 1}"
    try:
        bench.PYTHON = str(tree.python)  # run_target starts `PYTHON -m target_salesforce_crm`
        startup = bench.run_target(emu, schema_only, 0, LATENCY_MS, CONCURRENCY, workdir,
                                   kind="startup", tag=tag)
        full = bench.run_target(emu, dataset.input_path, dataset.n, LATENCY_MS, CONCURRENCY,
                                workdir, tag=tag)
    finally:
        bench.PYTHON = own_python
        emu.stop()
    full.label = f"{tree.name} target #{rep + 1}"
    return Measured(full, startup)


def run_noop(dataset: bench.Dataset, schema_only: Path, workdir: Path, rep: int) -> Measured:
    startup = bench.run_noop(bench.Dataset(0, schema_only, dataset.seed_path), "fast", workdir)
    full = bench.run_noop(dataset, "fast", workdir)
    full.label = f"no-op sink (fast validator) #{rep + 1}"
    return Measured(full, startup)


def third_party(python: Path) -> set[str]:
    """The venv's installed distributions, without the tree's own editable install."""
    frozen = subprocess.run([str(python), "-m", "pip", "freeze", "--disable-pip-version-check"],
                            capture_output=True, text=True, check=True).stdout
    return {line for line in frozen.splitlines() if line and not line.startswith("-e ")}


def summarize(label: str, values: list[float], spec: str) -> str:
    return (f"{label}: median {statistics.median(values):{spec}}, "
            f"min {min(values):{spec}}, max {max(values):{spec}}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--old", type=Path, required=True,
                        help="worktree of the pre-restructure commit, with .venv-test built")
    parser.add_argument("--new", type=Path, default=ROOT,
                        help="the restructured tree (default: this one)")
    parser.add_argument("--also", action="append", default=[], metavar="NAME=PATH",
                        help="another tree to measure between old and new (repeatable)")
    parser.add_argument("--records", type=int, default=50_000, metavar="N")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-wait", action="store_true",
                        help="do not wait for other processes to go quiet before each run")
    parser.add_argument("--workdir", type=Path, default=HERE / ".work")
    args = parser.parse_args(argv)
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    trees = [Tree("old", args.old.resolve()),
             *(Tree(name, Path(path).resolve())
               for name, _, path in (spec.partition("=") for spec in args.also)),
             Tree("new", args.new.resolve())]
    for tree in trees:
        if not tree.python.exists():
            parser.error(f"{tree.python} missing: run `bash scripts/test.sh --co -q` in "
                         f"{tree.root}")
    bench.GATE.max_wait, bench.GATE.budget = (0.0, 0.0) if args.no_wait else (20.0, 300.0)
    workdir = args.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()

    print("# Restructure (issue 7): target CPU before and after, one interleaved run")
    for line in bench.machine_info():
        print(line)
    for tree in trees:
        commit = subprocess.run(["git", "-C", str(tree.root), "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True, check=True).stdout.strip()
        package = subprocess.run([str(tree.python), "-c", "import target_salesforce_crm as t; "
                                  "print(t.__file__)"], capture_output=True, text=True, check=True,
                                 cwd=workdir).stdout.strip()
        print(f"{tree.name}: {tree.root} at {commit}; {tree.python} imports {package}")
    packages = {tree.name: third_party(tree.python) for tree in trees}
    for tree in trees[:-1]:
        differ = packages[tree.name] ^ packages["new"]
        if differ:  # e.g. numpy present makes singer-sdk's import (joblib) ~0.3 s slower
            print(f"WARNING: {tree.name}'s venv differs from new's in {sorted(differ)}")
    if not any(packages[t.name] ^ packages["new"] for t in trees):
        print(f"every venv holds the same {len(packages['new'])} third-party distributions")
    print(f"N = {args.records:,}; {LATENCY_MS} ms latency, max_concurrency {CONCURRENCY}, "
          f"validation on; {args.repeat} repeats of (no-op sink, "
          f"{', '.join(tree.name for tree in trees)}), the order of the trees rotating")
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print()

    dataset = bench.generate(args.records, workdir)
    schema_only = bench.schema_only_input(workdir)
    noops: list[Measured] = []
    targets: dict[str, list[Measured]] = {tree.name: [] for tree in trees}
    rows: list[tuple[Measured, Measured]] = []
    for rep in range(args.repeat):
        noop = run_noop(dataset, schema_only, workdir, rep)
        noops.append(noop)
        rows.append((noop, noop))
        shift = rep % len(trees)
        for tree in trees[shift:] + trees[:shift]:
            measured = run_tree(tree, dataset, schema_only, workdir, rep)
            targets[tree.name].append(measured)
            rows.append((measured, noop))

    header = (f"{'run':<32} {'wall s':>7} {'rec/s':>8} {'CPU s/100k':>10} {'x no-op':>8} "
              f"{'start CPU s':>11} {'net x no-op':>11} {'calls/1k':>8} {'RSS MB':>7} "
              f"{'other':>6}")
    print(header)
    print("-" * len(header))
    for measured, noop in rows:
        result = measured.full
        calls = 1000 * result.api_calls_total / result.n if result.api else None
        print(f"{result.label:<32} {result.wall:7.1f} {result.rate:8,.0f} "
              f"{result.cpu_per_100k:10.2f} {measured.ratio(noop):8.2f} "
              f"{measured.startup.cpu:11.2f} {measured.net_ratio(noop):11.2f} "
              f"{bench.fmt(calls, '.3f', 8)} {result.rss_kb / 1024:7.1f} "
              f"{result.other_cpu / result.wall if result.wall else 0:6.2f}"
              + ("  !! " + "; ".join(result.problems + measured.startup.problems)
                 if result.problems or measured.startup.problems else ""))
    print()
    print("x no-op = CPU of the run over the no-op sink's of the same repeat (start-up included "
          "in both); start CPU s = CPU of the same program on a schema-only input (imports, "
          "token, describe);")
    print("net x no-op = (CPU - start CPU) over the no-op sink's same: CPU per record once "
          "started; calls/1k = (collections + token + describe calls) per 1,000 records;")
    print("other = cores used by other processes during the run")
    print()
    ratios: dict[str, list[float]] = {}
    for name, measured in targets.items():
        results = [m.full for m in measured]
        ratios[name] = [m.ratio(noop) for m, noop in zip(measured, noops, strict=True)]
        print(summarize(f"{name}: CPU / no-op sink", ratios[name], ".2f") + "x")
        print("  " + summarize("net of start-up, CPU / no-op sink",
                               [m.net_ratio(noop) for m, noop in zip(measured, noops,
                                                                     strict=True)], ".2f"))
        print("  " + summarize("start-up CPU s", [m.startup.cpu for m in measured], ".2f"))
        print("  " + summarize("CPU s/100k", [r.cpu_per_100k for r in results], ".2f"))
        print("  " + summarize("records/s", [r.rate for r in results], ",.0f"))
        print("  " + summarize("API calls/1k records",
                               [1000 * r.api_calls_total / r.n for r in results], ".3f"))
        print("  API calls per run: " + ", ".join(
            f"collections {r.api['collections']} + token {r.api['token']} + describe "
            f"{r.api['describe']}" for r in results[:1]))
    print(summarize("no-op sink CPU s/100k", [m.full.cpu_per_100k for m in noops], ".2f"))
    print(summarize("no-op sink start-up CPU s", [m.startup.cpu for m in noops], ".2f"))
    for tree in trees[1:]:
        paired = [later / old for old, later in zip(ratios["old"], ratios[tree.name],
                                                    strict=True)]
        print(summarize(f"{tree.name} / old CPU ratio, paired by repeat", paired, ".3f"))
    old_median, new_median = statistics.median(ratios["old"]), statistics.median(ratios["new"])
    failures = [r for measured in targets.values() for m in measured
                for r in (m.full, m.startup) if r.problems]
    verdict = "no worse" if new_median <= old_median * 1.05 else "WORSE"
    print()
    print(f"CPU ratio to the no-op sink (median of {args.repeat}): old {old_median:.2f}x, "
          f"new {new_median:.2f}x -> new is {verdict} (5% tolerance for noise)")
    print(f"every target run correct (exit 0, all records landed, none rejected): "
          f"{'yes' if not failures else f'NO, {len(failures)} with problems'}")
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"total wall time: {time.perf_counter() - started:.0f} s "
          f"(of which {bench.GATE.waited:.0f} s waiting for other processes to go quiet)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
