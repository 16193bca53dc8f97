"""The command line as cron runs it: a real process, its exit codes, and a quiet stdout."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest
from support import ROOT, run_cli, write_config

from phishme_intel.simulator import Simulator
from phishme_intel.version import __version__


def test_a_successful_run_exits_0_and_prints_nothing(config, dataset):
    result = run_cli(config)

    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    log = (config.parent / "phishme_intel.log").read_text()
    assert "run started" in log and "run finished: backfill" in log


def test_the_three_entry_points_are_the_same_program(config):
    for command in (
        [sys.executable, "-m", "phishme_intel", "--version"],
        [sys.executable, str(ROOT / "phishme_to_product.py"), "--version"],
    ):
        result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
        assert (result.returncode, result.stdout.strip()) == (0, f"phishme-intel {__version__}")


def test_check_validates_and_tests_the_connection_without_syncing(config, simulator):
    result = run_cli(config, "--check")

    assert result.returncode == 0, result.stderr
    assert "OK:" in result.stdout and "sqlite" in result.stdout
    assert [r.path for r in simulator.requests] == ["/feed/"]
    assert not (config.parent / "phishme_intel.sqlite3").exists()


def test_invalid_config_exits_78_listing_every_problem_without_traceback(tmp_path):
    config = write_config(tmp_path, "ftp://nowhere", pm_api={"results_per_page": "500", "init_date": "yesterday-ish"})
    before = config.read_bytes()

    result = run_cli(config)

    assert result.returncode == 78
    assert "[pm_api] base_url" in result.stderr
    assert "[pm_api] results_per_page: must be a whole number from 1 to 100, not 500" in result.stderr
    assert "[pm_api] init_date" in result.stderr
    assert "Traceback" not in result.stderr
    assert config.read_bytes() == before


def test_rejected_credentials_exit_77(tmp_path, dataset):
    with Simulator(dataset, user="someone-else", password="x") as sim:
        config = write_config(tmp_path, sim.url)
        result = run_cli(config)

    assert result.returncode == 77
    assert "rejected the credentials" in result.stderr


def test_unreachable_api_exits_69_after_bounded_retries(tmp_path):
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    config = write_config(tmp_path, f"http://127.0.0.1:{port}/apiv1", pm_api={"max_retries": "2"})

    result = run_cli(config)

    assert result.returncode == 69
    assert "failed 3 times" in result.stderr
    assert "position =\n" in config.read_text()


def test_unknown_position_exits_65_and_says_how_to_recover(tmp_path, simulator):
    config = write_config(tmp_path, simulator.url, pm_api={"position": "0b3c0c7e-8a4c-4a47-9c66-0d5e62d3a2b1"})

    result = run_cli(config)

    assert result.returncode == 65
    assert "empty [pm_api] position" in result.stderr


def test_failing_adapter_exits_74_and_keeps_the_position(tmp_path, simulator):
    config = write_config(tmp_path, simulator.url, integration_sqlite={"path": str(tmp_path / "store.sqlite3")})
    (tmp_path / "store.sqlite3").write_bytes(b"this is not a database, just bytes" * 100)

    result = run_cli(config)

    assert result.returncode == 74
    assert "adapter sqlite" in result.stderr
    assert "position =\n" in config.read_text()


@pytest.mark.skipif(os.geteuid() != 0, reason="only root is refused")
def test_running_as_root_is_refused_without_allow_root(config):
    result = subprocess.run(
        [sys.executable, str(ROOT / "phishme_to_product.py"), "-conf", str(config)], capture_output=True, text=True
    )
    assert result.returncode == 77
    assert "--allow-root" in result.stderr


def test_a_missing_config_file_exits_78(tmp_path):
    result = run_cli(tmp_path / "nope.ini")

    assert result.returncode == 78
    assert "cannot read the file" in result.stderr


def test_an_error_message_that_happens_to_contain_a_secret_shows_it_masked(tmp_path):
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    config = write_config(tmp_path, f"http://127.0.0.1:{port}/apiv1", pm_api={"max_retries": "0", "pass": "127.0.0.1"})

    result = run_cli(config)

    assert result.returncode == 69
    assert "is *** reachable?" in result.stderr
    assert "127.0.0.1" not in result.stderr
