"""``python -m phishme_intel.demo``: the main job, end to end, on the built-in default.

Starts the bundled API simulator in its own process, writes a config.ini for it into
``demo-run/``, runs ``python -m phishme_intel -conf`` (what ``phishme_to_product.py`` and
the ``phishme-intel`` command run) twice: the backfill, then, after the simulator published
updates and deletions, the updates run; and prints what landed in the SQLite store. It
needs nothing but the installed package: no source checkout, no config.ini.example.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .simulator.process import SimulatorProcess

CONFIG = """\
# written by python -m phishme_intel.demo for the bundled simulator; see config.ini.example
[pm_api]
base_url = {base_url}
user = demo
pass = demo-secret
init_date = {init_date}
max_requests_per_second = 0
position =

[integration_sqlite]
use = True
path = phishme_intel.sqlite3
"""


def main() -> int:
    """Run the demo; returns the exit code of the first failing step, else 0."""
    options = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    options.add_argument("--dir", default="demo-run", help="working folder, recreated (default demo-run)")
    options.add_argument("--malware", type=int, default=2000)
    options.add_argument("--phish", type=int, default=500)
    args = options.parse_args()
    work = Path(args.dir).resolve()
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        simulator = SimulatorProcess(
            work, "--malware", str(args.malware), "--phish", str(args.phish), "--days", "30",
            "--user", "demo", "--password", "demo-secret", timeout=60,
        )
    except RuntimeError as exc:
        raise SystemExit(str(exc)) from None
    with simulator:
        config = _write_config(work, simulator.url)
        print(f"simulator: {args.malware} malware + {args.phish} phish threats on 127.0.0.1:{simulator.port}")
        code = _sync("backfill", config)
        if code:
            return code
        changed = simulator.control("POST", "mutate?republish=200&delete=40&add_malware=50&add_phish=10")
        print(f"simulator: published updates and deletions {_counts(changed)}")
        code = _sync("updates", config)
        if code:
            return code
        _summary(work / "phishme_intel.sqlite3", config)
        return 0


def _write_config(work: Path, base_url: str) -> Path:
    init_date = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=31)).strftime("%Y-%m-%d")
    config = work / "config.ini"
    with tempfile.NamedTemporaryFile("w", dir=work, delete=False) as handle:
        handle.write(CONFIG.format(base_url=base_url, init_date=init_date))
    os.chmod(handle.name, 0o600)
    os.replace(handle.name, config)
    return config


def _sync(step: str, config: Path) -> int:
    started = time.monotonic()
    as_root = ["--allow-root"] if os.geteuid() == 0 else []
    result = subprocess.run([sys.executable, "-m", "phishme_intel", "-conf", str(config), *as_root])
    elapsed = time.monotonic() - started
    print(f"{step}: phishme-intel exited {result.returncode} after {elapsed:.2f} s")
    if result.returncode:
        print(f"see the log: {config.parent / 'phishme_intel.log'}")
    return result.returncode


def _counts(changed: dict[str, object]) -> str:
    return ", ".join(f"{key}: {len(v) if isinstance(v, list) else v}" for key, v in changed.items())


def _summary(database: Path, config: Path) -> None:
    with sqlite3.connect(database) as db:
        threats = db.execute("SELECT threat_type, count(*) FROM threats GROUP BY 1 ORDER BY 1").fetchall()
        kinds = db.execute("SELECT kind, count(*) FROM indicators GROUP BY 1 ORDER BY 2 DESC").fetchall()
        deleted = db.execute("SELECT count(*) FROM deleted_threats").fetchone()[0]
    position = next(
        (line.split("=", 1)[1].strip() for line in config.read_text().splitlines() if line.startswith("position")), ""
    )
    print(f"\nSQLite store {database}:")
    print("  threats:    " + ", ".join(f"{kind} {count}" for kind, count in threats))
    print("  indicators: " + ", ".join(f"{kind} {count}" for kind, count in kinds))
    print(f"  withdrawn:  {deleted} (tombstones in deleted_threats)")
    print(f"position stored in {config}: {position}")
    print(f"log: tail -f {config.parent / 'phishme_intel.log'}")


if __name__ == "__main__":
    sys.exit(main())
