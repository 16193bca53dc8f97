"""The parts of a benchmark run: the simulator in its own process, a config.ini, the sync as a process.

Everything here talks to real processes over real loopback HTTP, like a cron run would: the
simulator is ``python -m phishme_intel.simulator`` and the sync is ``phishme_to_product.py``.
"""

from __future__ import annotations

import compileall
import contextlib
import datetime as dt
import itertools
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from phishme_intel.simulator.process import SimulatorProcess

ROOT = Path(__file__).resolve().parent.parent
sys.path.append(str(ROOT / "tests"))
from support import config_from_example  # noqa: E402 - the tests' support module is its one home

# Byte code on disk, as a pip install leaves it: with PYTHONDONTWRITEBYTECODE set, an editable
# checkout would compile every module again at every start of the sync (about 50 ms a start).
compileall.compile_dir(ROOT / "phishme_intel", quiet=1)

#: 32 characters each, like the vendor's API tokens (phishme-intelligence 4.8 refuses shorter ones)
USER, PASSWORD = "benchtoken" + "0" * 22, "benchsecret" + "0" * 21
DAYS = 30
_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Workload:
    """A dataset and a latency: ``malware`` + ``phish`` threats published over DAYS days, then changes."""

    name: str
    malware: int
    phish: int
    latency_ms: float
    republish: int = 0
    delete: int = 0
    seed: int = 1
    #: phishme-intelligence 4.8 runs beside the sync on this workload's simulator
    side_by_side: bool = False

    @property
    def threats(self) -> int:
        return self.malware + self.phish


@dataclass(frozen=True)
class SyncRun:
    """One run of the sync process: wall and CPU time (s), peak RSS (MiB), and what the simulator saw."""

    wall: float
    cpu: float
    peak_rss_mib: float
    requests: int
    connections: int
    simulator_cpu: float
    by_path: dict[str, int]


class BenchSimulator(SimulatorProcess):
    """The simulator process serving one workload's dataset, pre-rendered."""

    def __init__(self, work: Path, workload: Workload, profile: str, detections: int | None) -> None:
        sizes = ["--profile", profile] + ([] if detections is None else ["--detections", str(detections)])
        super().__init__(
            work, "--seed", str(workload.seed), "--malware", str(workload.malware), "--phish", str(workload.phish),
            "--days", str(DAYS), *sizes, "--latency-ms", str(workload.latency_ms),
            "--user", USER, "--password", PASSWORD, "--prerender", cwd=ROOT,
        )

    def cpu_seconds(self) -> float:
        """User + system CPU time the simulator process has used so far."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _TICKS


@contextmanager
def scratch(prefix: str) -> Iterator[Callable[[str], Path]]:
    """A maker of new, empty folders for a benchmark's runs, all deleted together when it ends.

    No run's files are deleted while the benchmark goes on: on ext4 without a journal (this
    VM's disk), the kernel looks at the inodes freed in the last minutes before it hands out
    a new one (``recently_deleted`` in fs/ext4/ialloc.c). Right after 12,000 to 24,000 files
    were deleted nearby, creating a file cost 0.3-0.5 ms of system time instead of 0.03 ms,
    and the JSON files and STIX runs were charged 3.5-6.5 s for the previous run's clean-up.
    New folders go into their parent's block group, and "recently" lasts minutes while that
    group keeps getting new files: set ``TMPDIR`` to a folder where nothing deletes many
    files (not ``/tmp`` beside a test suite) for figures that are the sync's own, and start
    six minutes or more after any large deletion (another benchmark's end, a test run): a new
    top-level folder goes to a group with many free inodes, and a clean-up just emptied some.
    """
    with tempfile.TemporaryDirectory(prefix=prefix) as top:
        yield lambda name: Path(tempfile.mkdtemp(prefix=name, dir=top))


def megabytes(mib: float) -> float:
    """``mib`` MiB in MB (10^6 bytes): the memory targets are in MB, RSS is read in KiB."""
    return mib * 2**20 / 10**6


def write_config(work: Path, url: str, concurrency: int, rate: float) -> Path:
    """config.ini.example for the simulator at ``url``, with the SQLite store on.

    ``rate`` is ``max_requests_per_second``; the benchmark's default 0 (no limit), as the
    default limit of 10 would make it measure the limit, not the sync.
    """
    init_date = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=DAYS + 1)).strftime("%Y-%m-%d")
    return config_from_example(work, pm_api={
        "base_url": url, "user": USER, "pass": PASSWORD, "init_date": init_date,
        "concurrency": str(concurrency), "max_requests_per_second": f"{rate:g}",
    })


def run_sync(config: Path, simulator: BenchSimulator) -> SyncRun:
    """Run ``phishme_to_product.py -conf config`` to completion; fails loudly if it fails."""
    as_root = ["--allow-root"] if os.geteuid() == 0 else []
    return run_process([sys.executable, str(ROOT / "phishme_to_product.py"), "-conf", str(config), *as_root],
                       config.parent, simulator)


def run_process(argv: list[str], work: Path, simulator: BenchSimulator) -> SyncRun:
    """Run ``argv`` in ``work`` to completion, measured; fails loudly if it exits non-zero.

    The peak RSS is the process's own high-water mark (``VmHWM``), read until it exits (the
    ``ru_maxrss`` that ``wait4`` reports would also count this process's size when it started
    the sync, since Linux carries it over ``exec``), plus the most that its child processes
    (the ``tar`` that makes a batch's files, one per adapter that writes files) were seen to
    hold together, every 100 ms (not a copy of the sync between its ``fork`` and ``exec``),
    each counted by its proportional set size (``Pss``): what it maps alone, and its share of
    the pages it maps with others. Their RSS would count again the C library pages the sync
    itself holds (a ``tar``: 2.5 MiB RSS, 0.8 MiB of it its own, 1.2 MiB PSS). What earlier
    runs left unwritten is written first (``os.sync``): a run that wrote hundreds of MB of
    files had the next compete with the kernel writing them back for the next half minute.
    """
    os.sync()
    simulator.control("POST", "reset_stats")
    cpu_before = simulator.cpu_seconds()
    errors = work / "stderr.txt"
    started = time.perf_counter()
    with errors.open("wb") as stderr:
        process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=stderr, cwd=work)
    peak_kib = children_kib = 0
    program = os.path.realpath(argv[0])
    for sample in itertools.count():
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            break
        peak_kib = max(peak_kib, _high_water_kib(process.pid))
        if sample % 10 == 0:  # a tar lives for seconds; reading each thread's children costs the machine
            children = [child for child in _children(process.pid) if _program(child) not in (program, None)]
            children_kib = max(children_kib, sum(map(_proportional_kib, children)))
        time.sleep(0.01)
    peak_kib += children_kib
    wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode:
        raise SystemExit(
            f"{argv[1]} exited {process.returncode}: {errors.read_text(errors='replace').strip()} (in {work})"
        )
    stats = simulator.control("GET", "stats")
    return SyncRun(wall, usage.ru_utime + usage.ru_stime, peak_kib / 1024, stats["requests"],
                   stats["connections"], simulator.cpu_seconds() - cpu_before, stats["by_path"])


def _children(pid: int) -> list[int]:
    """The child processes of ``pid`` (of each of its threads), as Linux lists them; none once it has exited."""
    found = []
    for children in Path(f"/proc/{pid}/task").glob("*/children"):
        with contextlib.suppress(OSError):
            found += map(int, children.read_text().split())
    return found


def _program(pid: int) -> str | None:
    """The program process ``pid`` runs (its executable's path); None once it has exited."""
    try:
        return os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return None


def _proportional_kib(pid: int) -> int:
    """The proportional set size (``Pss``) of process ``pid`` now, in KiB; 0 once it has exited."""
    return _kib(pid, "smaps_rollup", "Pss:")


def _high_water_kib(pid: int) -> int:
    """The peak resident set of process ``pid`` so far, in KiB; 0 once it has exited."""
    return _kib(pid, "status", "VmHWM:")


def _kib(pid: int, name: str, field: str) -> int:
    """The KiB that line ``field`` of ``/proc/<pid>/<name>`` gives; 0 once the process has exited."""
    try:
        text = Path(f"/proc/{pid}/{name}").read_text()
    except OSError:
        return 0
    return next((int(line.split()[1]) for line in text.splitlines() if line.startswith(field)), 0)
