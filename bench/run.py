"""The sync benchmark: ``.venv/bin/python bench/run.py`` (``--help`` for the options).

For each workload it starts the bundled simulator in its own process (seeded dataset of the
realistic threat profile by default, per-request latency), measures the I/O, decode and
store floors, runs the real sync (``phishme_to_product.py`` as a process, SQLite store on,
``max_requests_per_second = 0``) for the backfill, lets the simulator re-publish and delete
threats, runs the sync again for the updates, and prints one table row per phase. For W1,
phishme-intelligence 4.8.0 (the vendor's library, see ``vendor.py``) runs beside it against
the same simulator: its backfill right after ours, its updates right after ours. Each
workload runs in a fresh temporary folder. Then it checks the figures against the targets
of docs/performance.rst.

Workloads: W1 (10,000 malware + 2,000 phish; 2,000 re-published and 200 deleted) at 0 and
50 ms latency, and the scale pair (5,000 and 50,000 threats, same proportions) for memory.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import os
import platform
import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import floors
import vendor
from harness import (
    DAYS,
    PASSWORD,
    ROOT,
    USER,
    BenchSimulator,
    SyncRun,
    Workload,
    megabytes,
    run_sync,
    scratch,
    write_config,
)

from phishme_intel.simulator.threats import PROFILES

WINDOW_HOURS = 24
VENDOR_VENV = ROOT / "bench" / "results" / f"phishme-intelligence-{vendor.RELEASE}"
WORKLOADS = {
    "w1": [
        Workload("W1", 10_000, 2_000, 0, republish=2_000, delete=200, side_by_side=True),
        Workload("W1", 10_000, 2_000, 50, republish=2_000, delete=200, side_by_side=True),
    ],
    "scale": [
        Workload("scale", 4_167, 833, 0, republish=833, delete=83),
        Workload("scale", 41_667, 8_333, 0, republish=8_333, delete=833),
    ],
}


@dataclass(frozen=True)
class Setup:
    """What every workload runs with: ``[pm_api] concurrency`` and ``max_requests_per_second``,
    the simulator's threat profile and ``vendorDetections`` per executable (None: the
    profile's), and the Python of phishme-intelligence 4.8 (None: not run)."""

    concurrency: int
    rate: float
    profile: str
    detections: int | None
    vendor: Path | None


@dataclass(frozen=True)
class Result:
    """A workload's measurements: both sync runs and the floors."""

    workload: Workload
    backfill: SyncRun
    updates: SyncRun
    floors: floors.Floors
    windows: int
    vendor: tuple[SyncRun, SyncRun] | None

    @property
    def total(self) -> float:
        return self.backfill.wall + self.updates.wall

    @property
    def vendor_total(self) -> float | None:
        return None if self.vendor is None else self.vendor[0].wall + self.vendor[1].wall


def measure(workload: Workload, setup: Setup, work: Path) -> Result:
    """One workload, start to end, in the empty folder ``work``."""
    with BenchSimulator(work, workload, setup.profile, setup.detections) as simulator:
        config = write_config(work, simulator.url, setup.concurrency, setup.rate)
        begin = int(dt.datetime.combine(
            dt.date.today() - dt.timedelta(days=DAYS + 1), dt.time(), dt.timezone.utc
        ).timestamp())
        end = int(dt.datetime.now(dt.timezone.utc).timestamp())
        bottom = floors.measure(simulator.url, USER, PASSWORD, begin, end, setup.concurrency, work)
        backfill = run_sync(config, simulator)
        theirs = None
        if setup.vendor and workload.side_by_side:
            their_config = vendor.write_config(work, simulator.url)
            theirs = vendor.run(setup.vendor, their_config, simulator, workload.threats)
        changed = simulator.control("POST", f"mutate?republish={workload.republish}&delete={workload.delete}")
        updates = run_sync(config, simulator)
        if setup.vendor and workload.side_by_side:
            live = {tuple(key) for key in changed["republished"]} - {tuple(key) for key in changed["deleted"]}
            theirs = theirs, vendor.run(setup.vendor, their_config, simulator, len(live))
    return Result(workload, backfill, updates, bottom, math.ceil((end - begin) / (WINDOW_HOURS * 3600)), theirs)


def best(workloads: Sequence[Workload], setup: Setup, repeat: int) -> list[Result]:
    """Each workload's fastest of ``repeat`` runs (the machine is shared: the others only measure noise).

    The workloads take turns, round after round, so that a busy spell of the machine does not
    fall on one workload's runs only.
    """
    runs: list[list[Result]] = [[] for _ in workloads]
    with scratch("phishme-bench-") as folder:
        for attempt in range(repeat):
            for workload, done in zip(workloads, runs, strict=True):
                print(f"  {workload.name} {workload.threats} threats at {workload.latency_ms:g} ms, "
                      f"run {attempt + 1} of {repeat}", file=sys.stderr, flush=True)
                done.append(measure(workload, setup, folder(f"{workload.name}-")))
    return [_fastest(done) for done in runs]


def _fastest(done: Sequence[Result]) -> Result:
    """Our fastest round, with phishme-intelligence's fastest round (they need not be the same)."""
    ours = min(done, key=lambda result: result.total)
    theirs = [result for result in done if result.vendor is not None]
    if not theirs:
        return ours
    return replace(ours, vendor=min(theirs, key=lambda result: result.vendor_total or 0).vendor)


def table(results: Sequence[Result]) -> str:
    """The figures as an RST simple table."""
    header = ("workload", "threats", "latency", "phase", "wall s", "items/s", "CPU s", "requests", "TCP conns",
              "peak RSS MiB", "sim CPU s")
    rows = []
    for r in results:
        w = r.workload
        changes = w.republish + w.delete
        common = (w.name, f"{w.threats:,}", f"{w.latency_ms:g} ms")
        runs = [("", r.backfill, r.updates)]
        if r.vendor is not None:
            runs.append((f"pi {vendor.RELEASE} ", *r.vendor))
        for who, backfill, updates in runs:
            both = _together(backfill, updates)
            for phase, items, run in (("backfill", w.threats, backfill), ("updates", changes, updates),
                                      ("end to end", w.threats, both)):
                rows.append((*common, who + phase, f"{run.wall:.2f}", f"{items / run.wall:,.0f}", f"{run.cpu:.2f}",
                             str(run.requests), str(run.connections), f"{run.peak_rss_mib:.0f}",
                             f"{run.simulator_cpu:.2f}"))
        for phase, seconds in (("I/O floor", r.floors.io), ("decode floor", r.floors.decode),
                               ("store floor", r.floors.store)):
            rows.append((*common, phase, f"{seconds:.2f}", f"{w.threats / seconds:,.0f}", "",
                         str(r.floors.pages) if phase == "I/O floor" else "", "", "", ""))
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=True)]
    rule = "  ".join("=" * width for width in widths)
    lines = [rule, "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)), rule]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    return "\n".join([*lines, rule])


def _together(backfill: SyncRun, updates: SyncRun) -> SyncRun:
    """Both runs as one: times and requests added up, the larger peak and connection count."""
    return SyncRun(backfill.wall + updates.wall, backfill.cpu + updates.cpu,
                   max(backfill.peak_rss_mib, updates.peak_rss_mib), backfill.requests + updates.requests,
                   max(backfill.connections, updates.connections), backfill.simulator_cpu + updates.simulator_cpu, {})


def verdicts(results: Sequence[Result], concurrency: int) -> list[str]:
    """Each target of docs/performance.rst that these results can judge: met or not."""
    found = []
    by_key = {(r.workload.name, r.workload.threats, r.workload.latency_ms): r for r in results}
    fast, slow = by_key.get(("W1", 12_000, 0)), by_key.get(("W1", 12_000, 50))
    if fast and slow:
        ratio = slow.total / fast.total
        found.append(_verdict(ratio <= 1.3, f"latency hidden: W1 at 50 ms takes {ratio:.2f} x W1 at 0 ms (<= 1.3)"))
    if fast:
        speed = fast.workload.threats / fast.total
        found.append(_verdict(fast.total <= 2.4, f"throughput: W1 at 0 ms end to end {fast.total:.2f} s, "
                                                 f"{speed:,.0f} threats/s (<= 2.4 s, >= 5,000 threats/s)"))
        found.append(_verdict(fast.updates.wall <= 0.5, f"updates: W1 at 0 ms updates run {fast.updates.wall:.2f} s "
                                                        f"(<= 0.5 s)"))
    for result, floor in ((fast, 6), (slow, 5)):
        if result and result.vendor_total:
            ratio = result.vendor_total / result.total
            found.append(_verdict(ratio >= floor, f"side by side: W1 at {result.workload.latency_ms:g} ms, "
                                                  f"pi {vendor.RELEASE} {result.vendor_total:.2f} s / ours "
                                                  f"{result.total:.2f} s = {ratio:.1f} x (>= {floor})"))
    peak = max(max(r.backfill.peak_rss_mib, r.updates.peak_rss_mib) for r in results)
    found.append(_verdict(megabytes(peak) <= 100,
                          f"memory: peak RSS {peak:.0f} MiB = {megabytes(peak):.1f} MB (<= 100 MB)"))
    small, large = by_key.get(("scale", 5_000, 0)), by_key.get(("scale", 50_000, 0))
    if small and large:
        ratio = _peak(large) / _peak(small)
        found.append(_verdict(ratio <= 1.2, f"memory: 50,000 threats peak {ratio:.2f} x 5,000 threats (<= 1.2)"))
    for r in results:
        w = r.workload
        expected = math.ceil(w.threats / 100) + r.windows
        found.append(_verdict(
            r.backfill.requests <= expected + 1,
            f"requests: {w.name} {w.threats:,} at {w.latency_ms:g} ms backfill made {r.backfill.requests} "
            f"(threats/100 + windows + 1 updates = {expected + 1})",
        ))
        changelog_pages = r.updates.by_path.get("/threat/updates", 0) - 1
        searches = r.updates.by_path.get("/threat/search", 0)
        bound = math.ceil(w.republish / 100) + max(0, changelog_pages - 1)
        found.append(_verdict(
            searches <= bound,
            f"requests: {w.name} {w.threats:,} at {w.latency_ms:g} ms updates made {searches} by-id searches for "
            f"{w.republish:,} re-published threats in {changelog_pages} changelog pages (<= {bound})",
        ))
        found.append(_verdict(
            max(r.backfill.connections, r.updates.connections) <= concurrency,
            f"connections: {w.name} {w.threats:,} at {w.latency_ms:g} ms used {r.backfill.connections} "
            f"(backfill) and {r.updates.connections} (updates) for {concurrency} workers",
        ))
    return found


def _peak(result: Result) -> float:
    return max(result.backfill.peak_rss_mib, result.updates.peak_rss_mib)


def _verdict(met: bool, text: str) -> str:
    return f"{'met    ' if met else 'NOT MET'}  {text}"


def machine() -> str:
    """What the figures were measured on."""
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor() or "unknown CPU")
    return (f"{os.cpu_count()} x {model}, Python {platform.python_version()}, "
            f"{platform.system()} {platform.release()}")


def main(argv: Sequence[str] | None = None) -> int:
    options = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    options.add_argument("workloads", nargs="*", metavar="WORKLOAD",
                         help=f"which workloads to run: {', '.join(WORKLOADS)} (default: all)")
    options.add_argument("--concurrency", type=int, default=4, help="[pm_api] concurrency (default 4, the default)")
    options.add_argument("--max-requests-per-second", type=float, default=0, metavar="N",
                         help="[pm_api] max_requests_per_second (default 0: no limit, else the limit is measured)")
    options.add_argument("--profile", choices=PROFILES, default="realistic",
                         help="the simulator's threat profile (default realistic; compact: the small threats)")
    options.add_argument("--detections", type=int, help="vendorDetections per executable (default: the profile's)")
    options.add_argument("--no-vendor", action="store_true",
                         help=f"do not run phishme-intelligence {vendor.RELEASE} beside W1")
    options.add_argument("--repeat", type=int, default=1, help="runs per workload; the fastest is shown")
    args = options.parse_args(argv)
    unknown = set(args.workloads) - set(WORKLOADS)
    if unknown:
        options.error(f"unknown workload {', '.join(sorted(unknown))}; choose from {', '.join(WORKLOADS)}")
    setup = Setup(args.concurrency, args.max_requests_per_second, args.profile, args.detections,
                  None if args.no_vendor else vendor.install(VENDOR_VENV))
    results = best([workload for name in args.workloads or WORKLOADS for workload in WORKLOADS[name]], setup,
                   args.repeat)
    limit = f"at most {setup.rate:g} requests/s" if setup.rate else "no client-side rate limit"
    detections = PROFILES[setup.profile].detections if setup.detections is None else setup.detections
    print(f"Measured on {machine()}; concurrency {setup.concurrency}, {limit}, {setup.profile} threats with "
          f"{detections} vendor detections per executable; the fastest of {args.repeat} round(s).\n")
    print(table(results))
    print()
    print("\n".join(verdicts(results, setup.concurrency)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
