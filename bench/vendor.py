"""phishme-intelligence 4.8.0, the vendor's integration library, run side by side with ours.

:func:`install` puts it into its own virtual environment from PyPI (once; ``bench/results/``
keeps it), :func:`write_config` writes the 4.x config.ini layout (``[pm_api]`` ...
``[local_proxy]``, every section its config check requires, JSON files output through
``[integration_raw_json]``), and :func:`run` starts it the way its README does,
``python -m phishme_intelligence -conf config.ini``, against the same simulator.

It exits 0 whatever happens, so :func:`run` reads its log for the line that says the sync
completed and counts the threats it says it processed. (It names its files by threat id
alone, so a malware and a phish threat with the same id share one file: the files are no
count.)
"""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import venv
from pathlib import Path

from harness import DAYS, PASSWORD, USER, BenchSimulator, SyncRun, run_process

RELEASE = "4.8.0"
_PACKAGE = f"phishme-intelligence=={RELEASE}"
_DONE = "PhishMe Intelligence sync completing.\n"
CONFIG = """\
[pm_api]
base_url = {url}
user = {user}
pass = {password}
init_date = {init_date}
position =
results_per_page = 100
max_retries = 3
expired_threat_days = 90

[pm_jitter]
use = False
execution_frequency = 15
scheduler_offset =

[pm_product]
intelligence = True
brand_intelligence = True

[pm_format]
cef = False
json = False
stix = False

[local_log]
log_file = {work}/pi.log
log_level = info

[local_file_lock]
use = True
lock_file = {work}/pi.lock

[local_proxy]
use = False
http =
https =
auth_basic_use = False
auth_basic_user =
auth_basic_pass =

[integration_raw_json]
use = True
append_file_use = False
append_file_location = {work}
multiple_file_use = True
multiple_file_location = {work}/json
multiple_file_split_by_date = False
"""


def install(folder: Path) -> Path:
    """The Python of a virtual environment in ``folder`` holding phishme-intelligence 4.8.0; made when missing."""
    python = folder.resolve() / "bin" / "python"
    if not (folder / ".installed").exists():
        print(f"  installing {_PACKAGE} into {folder}", file=sys.stderr, flush=True)
        venv.EnvBuilder(with_pip=True, clear=True).create(folder)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", _PACKAGE], check=True)
        (folder / ".installed").touch()
    return python


def write_config(work: Path, url: str) -> Path:
    """A 4.x config.ini for the simulator at ``url``: every threat of the last DAYS days into JSON files."""
    folder = work / "pi-4.8"
    (folder / "json").mkdir(parents=True)
    init_date = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=DAYS + 1)).strftime("%Y-%m-%d")
    config = folder / "config.ini"
    config.write_text(CONFIG.format(url=url, user=USER, password=PASSWORD, init_date=init_date, work=folder))
    return config


def run(python: Path, config: Path, simulator: BenchSimulator, expected: int) -> SyncRun:
    """One run of phishme-intelligence on ``config``; fails loudly unless it completed and processed ``expected``."""
    folder = config.parent
    log = folder / "pi.log"
    before = log.stat().st_size if log.exists() else 0
    measured = run_process([str(python), "-m", "phishme_intelligence", "-conf", str(config)], folder, simulator)
    with log.open() as text:
        text.seek(before)
        ending = text.read()
    processed = ending.count(" Processing PhishMe ")
    if not ending.endswith(_DONE + "\n\n") or processed != expected:
        raise SystemExit(f"phishme-intelligence {RELEASE} failed: {processed} threats of {expected}; see {log}")
    return measured
