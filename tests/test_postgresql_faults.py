"""Faults with the PostgreSQL store: the API failing, the server going away mid-run.

Either the run ends in a correct sync, or it exits non-zero with the store as of its last
commit and config.ini's position no further than that commit; the next run completes.
"""

from __future__ import annotations

import subprocess
import time

import pytest
from support import PASSWORD, ROOT, USER, cli_command, days_ago, run_cli, write_config

from phishme_intel import config as config_module
from phishme_intel.simulator import Dataset, Simulator


@pytest.fixture
def slow_simulator():
    """150 malware and 40 phish threats; 20 ms a request, so a backfill takes a few seconds."""
    with Simulator(Dataset(seed=41, malware=150, phish=40, days=10), user=USER, password=PASSWORD,
                   latency=0.02, updates_page_size=50) as simulator:
        yield simulator


def pg_config(folder, simulator, store):
    return write_config(
        folder, simulator.url,
        pm_api={"init_date": days_ago(11), "results_per_page": "20", "window_hours": "12", "concurrency": "1"},
        integration_sqlite={"use": "False"},
        integration_postgresql={"use": "True", "conninfo": store.settings["conninfo"], "pass": store.settings["pass"]},
    )


def held(store):
    return set(store.rows("SELECT threat_type, threat_id FROM threats"))


def test_an_api_fault_that_outlasts_the_retries_changes_neither_the_store_nor_the_position(
    tmp_path, slow_simulator, pg_store
):
    config = pg_config(tmp_path, slow_simulator, pg_store)
    assert run_cli(config).returncode == 0
    slow_simulator.dataset.republish(30)
    slow_simulator.dataset.delete(5)
    before, rows = config.read_bytes(), pg_store.rows("SELECT * FROM threats ORDER BY 1, 2")
    slow_simulator.faults.add("503", times=1000, path="/threat/updates")

    failed = run_cli(config)

    assert failed.returncode == 69, failed.stderr
    assert config.read_bytes() == before
    assert pg_store.rows("SELECT * FROM threats ORDER BY 1, 2") == rows
    slow_simulator.faults.clear()
    assert run_cli(config).returncode == 0
    assert held(pg_store) == slow_simulator.dataset.live_ids()


def test_the_server_closing_the_connection_mid_run_exits_74_and_the_next_run_completes(
    tmp_path, slow_simulator, pg_store, postgres
):
    config = pg_config(tmp_path, slow_simulator, pg_store)
    with open(tmp_path / "stderr.txt", "w+") as errors:
        process = subprocess.Popen(cli_command(config), stdout=subprocess.DEVNULL, stderr=errors, cwd=ROOT)
        try:
            terminated = _terminate_the_sync_connection(postgres, slow_simulator, process)
        finally:
            code = process.wait(timeout=120)
        errors.seek(0)
        stderr = errors.read()
    assert terminated
    assert code == 74, stderr
    assert "adapter postgresql" in stderr and pg_store.settings["pass"] not in stderr
    assert config_module.load(str(config)).state.position is None  # the backfill did not finish

    final = run_cli(config)

    assert final.returncode == 0, final.stderr
    assert held(pg_store) == slow_simulator.dataset.live_ids()


def _terminate_the_sync_connection(postgres, simulator, process) -> bool:
    """Once the run has a connection open and the simulator answered 5 searches, end its connection."""
    deadline = time.monotonic() + 60
    with postgres.connect() as admin:
        while process.poll() is None and time.monotonic() < deadline:
            searches = sum(1 for record in simulator.requests if record.path == "/threat/search")
            ended = admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'phishme-intel'"
            ).fetchall() if searches >= 5 else []
            if ended:
                return True
            time.sleep(0.01)
    return False


