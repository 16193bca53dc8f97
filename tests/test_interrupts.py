"""SIGINT and SIGTERM stop a run at a safe point; a second signal ends it at once.

Real signals to the real CLI: mid-backfill and mid-updates, sent when the simulator has
seen enough requests to know the run is well under way (an event, not a sleep). The run must
exit 130 (SIGINT) or 143 (SIGTERM) with one line on stderr and no traceback, log one line,
record ``interrupted`` in the status file, and keep config.ini at its last commit; the next
run must complete, and the store then holds exactly what one clean run holds.
"""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import pytest
from support import (
    PASSWORD,
    ROOT,
    USER,
    cli_command,
    contents,
    days_ago,
    run_cli,
    start_paused_at,
    wait_until,
    write_config,
)

from phishme_intel.simulator import Dataset, Simulator


@pytest.fixture
def slow_simulator():
    """500 malware and 100 phish threats over 30 days, 10 ms a request, changelog pages of 20."""
    dataset = Dataset(seed=41, malware=500, phish=100, days=30)
    with Simulator(dataset, user=USER, password=PASSWORD, latency=0.01, updates_page_size=20) as simulator:
        yield simulator


def interrupt_config(folder: Path, simulator: Simulator) -> Path:
    folder.mkdir(exist_ok=True)
    return write_config(
        folder, simulator.url, pm_api={"init_date": days_ago(31), "results_per_page": "20", "concurrency": "2"},
        integration_json_files={"use": "True", "layout": "flat", "jsonl_file": "threats.jsonl"},
    )


def signal_once_under_way(config: Path, simulator: Simulator, signum: int, path: str, requests: int):
    """Start the CLI, send ``signum`` once the simulator saw ``requests`` more requests to ``path``."""
    seen = sum(1 for r in simulator.requests if r.path == path)
    process = subprocess.Popen(cli_command(config), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        wait_until(lambda: sum(1 for r in simulator.requests if r.path == path) >= seen + requests,
                   f"{requests} requests to {path}")
        process.send_signal(signum)
        out, errors = process.communicate(timeout=120)
    finally:
        process.kill()
        process.wait()
    return process.returncode, out, errors


def assert_stopped_cleanly(config: Path, code: int, errors: str, exit_code: int, name: str, state_before: str):
    assert code == exit_code, errors
    assert errors.splitlines() == [errors.strip()], errors
    assert errors.startswith(f"phishme-intel: interrupted by {name}: stopped at a safe point"), errors
    log = (config.parent / "phishme_intel.log").read_text()
    assert f"run interrupted by {name}" in log
    assert "Traceback" not in log + errors
    status = json.loads((config.parent / "phishme_intel.status.json").read_text())
    assert status["last_run"]["outcome"] == "interrupted"
    assert status["last_run"]["exit_code"] == exit_code
    assert state_before != "" and config.exists()


def assert_same_as_a_clean_run(
    config: Path, simulator: Simulator, reference: Path, deleted: set[tuple[str, int]] = frozenset()
) -> None:
    """The store holds what a clean run holds, and a tombstone for each threat ``deleted`` since the first run."""
    clean = run_cli(interrupt_config(reference, simulator))
    assert clean.returncode == 0, clean.stderr
    actual, expected = contents(config.parent / "phishme_intel.sqlite3"), contents(reference / "phishme_intel.sqlite3")
    assert actual["threats"] == expected["threats"]
    assert actual["indicators"] == expected["indicators"]
    assert set(actual["deleted"]) == deleted


def test_sigint_mid_backfill_stops_at_a_safe_point_and_the_next_run_completes(tmp_path, slow_simulator):
    config = interrupt_config(tmp_path / "run", slow_simulator)

    code, _out, errors = signal_once_under_way(config, slow_simulator, signal.SIGINT, "/threat/search", 8)

    assert_stopped_cleanly(config, code, errors, 130, "SIGINT", config.read_text())
    assert "\nposition =\n" in config.read_text()  # the backfill did not finish
    again = run_cli(config)
    assert again.returncode == 0, again.stderr
    assert_same_as_a_clean_run(config, slow_simulator, tmp_path / "reference")


def test_sigterm_mid_updates_stops_at_a_safe_point_and_the_next_run_completes(tmp_path, slow_simulator):
    config = interrupt_config(tmp_path / "run", slow_simulator)
    assert run_cli(config).returncode == 0
    slow_simulator.dataset.republish(200)
    deleted = set(slow_simulator.dataset.delete(30))
    slow_simulator.dataset.add(malware=50, phish=10)

    code, _out, errors = signal_once_under_way(config, slow_simulator, signal.SIGTERM, "/threat/updates", 4)

    assert_stopped_cleanly(config, code, errors, 143, "SIGTERM", config.read_text())
    assert f"position = {slow_simulator.dataset.updates_end()}\n" not in config.read_text()
    again = run_cli(config)
    assert again.returncode == 0, again.stderr
    assert f"position = {slow_simulator.dataset.updates_end()}\n" in config.read_text()
    assert_same_as_a_clean_run(config, slow_simulator, tmp_path / "reference", deleted)


def test_a_signal_during_a_retry_wait_stops_the_run_without_waiting_it_out(tmp_path, simulator):
    config = write_config(tmp_path, simulator.url, pm_api={"max_retries": "5"})
    simulator.faults.add("429", times=1, path="/threat/search", retry_after=300)

    code, _out, errors = signal_once_under_way(config, simulator, signal.SIGTERM, "/threat/search", 1)

    assert code == 143, errors
    assert "Retry-After" not in errors and "Traceback" not in errors


def signal_while_delivering(config: Path, folder: Path, signum: int, second: bool) -> tuple[int, str]:
    """Pause the CLI as it delivers its first page and send ``signum``; once the run noted it,
    send it again (``second``) or let the run go on. Its exit status and stderr."""
    paused = start_paused_at(config, "phishme_intel.sync.backfill._decode_and_deliver", folder)
    try:
        wait_until((folder / "ready").exists, "the run to deliver its first page")
        paused.send_signal(signum)
        wait_until((folder / "heard").exists, "the run to note the signal")
        if second:
            paused.send_signal(signum)
        else:
            (folder / "go").touch()
        _out, errors = paused.communicate(timeout=60)
    finally:
        (folder / "go").touch()
        paused.kill()
        paused.wait()
    return paused.returncode, errors


def test_a_second_signal_ends_the_process_at_once(tmp_path, simulator):
    config = write_config(tmp_path, simulator.url)

    code, errors = signal_while_delivering(config, tmp_path, signal.SIGINT, second=True)

    assert code == -signal.SIGINT, errors
    assert "\nposition =\n" in config.read_text()


def test_a_stop_noted_mid_page_is_acted_on_after_that_page_never_halfway(tmp_path, simulator):
    config = write_config(tmp_path, simulator.url)

    code, errors = signal_while_delivering(config, tmp_path, signal.SIGTERM, second=False)

    assert_stopped_cleanly(config, code, errors, 143, "SIGTERM", config.read_text())
    assert contents(tmp_path / "phishme_intel.sqlite3")["threats"] == []  # nothing committed: the last commit kept
