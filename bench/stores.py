"""The two stores side by side: ``.venv/bin/python bench/stores.py`` (``--help`` for the options).

Runs the workload W1 (10,000 malware + 2,000 phish threats, realistic profile; then 2,000
re-published and 200 deleted) at 0 ms latency through the real sync twice, once into the
SQLite store and once into PostgreSQL, and prints one table row per store and phase. The
PostgreSQL server is a throwaway cluster from the machine's binaries, the one the tests use
(``tests/postgres.py``), with ``fsync`` off: the figures are the sync's and the adapter's,
not the disk's.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from configupdater import ConfigUpdater
from harness import BenchSimulator, SyncRun, Workload, run_sync, write_config
from postgres import Cluster  # the tests' cluster (harness puts tests/ on the path)

W1 = Workload("W1", 10_000, 2_000, 0, republish=2_000, delete=200)


def measure(store: str, cluster: Cluster, concurrency: int) -> tuple[SyncRun, SyncRun]:
    """The backfill and the updates run of W1 into ``store`` (``sqlite`` or ``postgresql``)."""
    with tempfile.TemporaryDirectory(prefix="phishme-bench-") as folder:
        work = Path(folder)
        with BenchSimulator(work, W1, "realistic", None) as simulator:
            config = write_config(work, simulator.url, concurrency, 0)
            if store == "postgresql":
                updater = ConfigUpdater()
                updater.read(config)
                updater["integration_sqlite"]["use"] = "False"
                section = updater["integration_postgresql"]
                section["use"] = "True"
                section["conninfo"] = cluster.conninfo(cluster.database())
                section["pass"] = cluster.password
                updater.update_file()
            backfill = run_sync(config, simulator)
            simulator.control("POST", f"mutate?republish={W1.republish}&delete={W1.delete}")
            return backfill, run_sync(config, simulator)


def main(argv: Sequence[str] | None = None) -> int:
    options = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    options.add_argument("--concurrency", type=int, default=4, help="[pm_api] concurrency (default 4)")
    options.add_argument("--repeat", type=int, default=1, help="runs per store; the fastest is shown")
    args = options.parse_args(argv)
    cluster = Cluster().start()
    try:
        rows = []
        for store in ("sqlite", "postgresql"):
            runs = [measure(store, cluster, args.concurrency) for _ in range(args.repeat)]
            backfill, updates = min(runs, key=lambda pair: pair[0].wall + pair[1].wall)
            for phase, items, run in (("backfill", W1.threats, backfill), ("updates", W1.republish + W1.delete,
                                                                             updates)):
                rows.append((store, phase, f"{run.wall:.2f}", f"{items / run.wall:,.0f}", f"{run.cpu:.2f}",
                             f"{run.peak_rss_mib:.0f}"))
    finally:
        cluster.stop()
    header = ("store", "phase", "wall s", "items/s", "CPU s", "peak RSS MiB")
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=True)]
    rule = "  ".join("=" * width for width in widths)
    print(f"W1 ({W1.threats:,} threats, then {W1.republish:,} re-published and {W1.delete} deleted), 0 ms latency\n")
    for line in (rule, header, rule, *rows, rule):
        cells = [line] if isinstance(line, str) else [c.ljust(w) for c, w in zip(line, widths, strict=True)]
        print("  ".join(cells).rstrip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
