"""Runs that overlap: one works, the rest leave at once; a killed run blocks nobody.

Real CLI processes on one config.ini and one simulator. The simulator holds the requests of
the run that got the lock (unanswered, until the test releases them), so the others meet a
held lock for as long as the test needs: whatever the machine's speed, a run that waited for
the lock instead of leaving would never end.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections import defaultdict
from pathlib import Path

from support import PASSWORD, ROOT, USER, cli_command, run_cli, store, write_config

from phishme_intel.simulator import Dataset, Simulator

LOG_LINE = re.compile(r"^\S+ \S+ +\[(\d+)\] \S+: (.*)$")


def log_by_process(log_file: Path) -> dict[int, list[str]]:
    """The messages of the log's lines, by process id."""
    lines: dict[int, list[str]] = defaultdict(list)
    for line in log_file.read_text().splitlines():
        if match := LOG_LINE.match(line):
            lines[int(match[1])].append(match[2])
    return lines


def test_twenty_runs_started_at_once_one_syncs_and_the_others_exit_75_while_it_holds_the_lock(tmp_path, dataset):
    with Simulator(dataset, user=USER, password=PASSWORD) as simulator:
        config = write_config(tmp_path, simulator.url, pm_api={"timeout": "600"})
        simulator.hold()  # the run that gets the lock stops at its first request
        processes = [
            subprocess.Popen(cli_command(config), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=ROOT)
            for _ in range(20)
        ]
        ended: dict[int, int] = {}
        deadline = time.monotonic() + 300
        while len(ended) < 19:
            assert time.monotonic() < deadline, f"only {len(ended)} of the 19 others left: one waits for the lock"
            for process in processes:
                if process.pid not in ended and (code := process.poll()) is not None:
                    ended[process.pid] = code
            time.sleep(0.01)
        [holder] = [process for process in processes if process.pid not in ended]
        assert simulator.wait_until_held(1)
        assert holder.poll() is None
        simulator.release()
        assert holder.wait(timeout=300) == 0

    assert sorted(ended.values()) == [75] * 19
    lines = log_by_process(tmp_path / "phishme_intel.log")
    assert any(message.startswith("run started") for message in lines[holder.pid])
    for pid in ended:
        [message] = lines[pid]  # the refusal is all it logged: no request, no wait
        assert "another run holds the lock" in message
    assert store(tmp_path / "phishme_intel.sqlite3")["threats"] == dataset.live_ids()


def test_a_run_killed_with_sigkill_mid_sync_does_not_block_the_next(tmp_path):
    dataset = Dataset(seed=41, malware=200, phish=40, days=15)
    with Simulator(dataset, user=USER, password=PASSWORD) as simulator:
        config = write_config(tmp_path, simulator.url, pm_api={"concurrency": "2"})
        simulator.hold(after=3)
        holder = subprocess.Popen(cli_command(config), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
        assert simulator.wait_until_held(1), "the run never made its fourth request"
        assert run_cli(config).returncode == 75

        holder.kill()
        assert holder.wait() == -9
        simulator.release()
        result = run_cli(config)

    assert result.returncode == 0, result.stderr
    assert store(tmp_path / "phishme_intel.sqlite3")["threats"] == dataset.live_ids()
