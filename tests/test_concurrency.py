"""Runs that overlap: one works, the rest leave at once; a killed run blocks nobody.

Real CLI processes on one config.ini and one simulator. The simulator's latency keeps the
run that got the lock busy for as long as the test needs, so the others meet a held lock.
"""

from __future__ import annotations

import datetime as dt
import re
import statistics
import subprocess
import time
from collections import defaultdict
from pathlib import Path

from support import PASSWORD, ROOT, USER, cli_command, run_cli, store, write_config

from phishme_intel.simulator import Dataset, Simulator

LOG_LINE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3})Z \S+ +\[(\d+)\] \S+: (.*)$")


def log_by_process(log_file: Path) -> dict[int, list[tuple[float, str]]]:
    """The log's lines grouped by process id: (epoch seconds, message)."""
    lines: dict[int, list[tuple[float, str]]] = defaultdict(list)
    for line in log_file.read_text().splitlines():
        if match := LOG_LINE.match(line):
            stamp = dt.datetime.fromisoformat(match[1]).replace(tzinfo=dt.timezone.utc).timestamp()
            lines[int(match[2])].append((stamp, match[3]))
    return lines


def test_twenty_runs_started_at_once_one_syncs_and_the_others_exit_75_within_a_second(tmp_path, dataset):
    with Simulator(dataset, user=USER, password=PASSWORD, latency=2.0) as simulator:
        config = write_config(tmp_path, simulator.url, pm_api={"timeout": "30"})
        processes = [
            subprocess.Popen(cli_command(config), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=ROOT)
            for _ in range(20)
        ]
        exited: dict[int, float] = {}
        deadline = time.monotonic() + 60
        while len(exited) < 19 and time.monotonic() < deadline:
            for process in processes:
                if process.pid not in exited and process.poll() is not None:
                    exited[process.pid] = time.time()
            time.sleep(0.005)
        simulator.latency = 0.0  # every run but one has ended: let that one finish
        codes = {process.pid: process.wait(timeout=120) for process in processes}

    winners = [pid for pid, code in codes.items() if code == 0]
    assert sorted(codes.values()) == [0] + [75] * 19
    assert winners[0] not in exited, "the run holding the lock ended before the others had tried it"
    lines = log_by_process(tmp_path / "phishme_intel.log")
    assert any(message.startswith("run started") for _, message in lines[winners[0]])
    delays = []
    for pid in set(codes) - set(winners):
        (refused_at, message), *others = lines[pid]
        assert "another run holds the lock" in message and others == []
        delays.append(exited[pid] - refused_at)
    # Nobody waits for the lock (the holder was kept busy until all had left). What remains is the
    # interpreter's exit while 19 others start on the same cores: a second, allowing for the scheduler.
    assert statistics.median(delays) < 1.0 and max(delays) < 3.0, sorted(delays)
    assert store(tmp_path / "phishme_intel.sqlite3")["threats"] == dataset.live_ids()


def test_a_run_killed_with_sigkill_mid_sync_does_not_block_the_next(tmp_path):
    dataset = Dataset(seed=41, malware=200, phish=40, days=15)
    with Simulator(dataset, user=USER, password=PASSWORD, latency=0.5) as simulator:
        config = write_config(tmp_path, simulator.url, pm_api={"concurrency": "2"})
        holder = subprocess.Popen(cli_command(config), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
        deadline = time.monotonic() + 30
        while len(simulator.requests) < 3:
            assert time.monotonic() < deadline and holder.poll() is None
            time.sleep(0.01)
        assert run_cli(config).returncode == 75

        holder.kill()
        assert holder.wait() == -9
        simulator.latency = 0.0
        result = run_cli(config)

    assert result.returncode == 0, result.stderr
    assert store(tmp_path / "phishme_intel.sqlite3")["threats"] == dataset.live_ids()
