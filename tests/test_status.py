"""The status file, the metrics file and ``--status``: when did it last succeed, and is it stuck?"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys

import pytest
from filelock import FileLock
from prometheus_client.parser import text_string_to_metric_families
from support import ROOT, run_cli, write_config

import phishme_intel
from phishme_intel.monitoring import status_file


def _status_json(folder):
    return json.loads((folder / "phishme_intel.status.json").read_text())


def _epoch(iso):
    return dt.datetime.fromisoformat(iso).timestamp()


def _unreachable(config):
    """Point config.ini at a port nobody listens on (every request fails, quickly)."""
    text = config.read_text()
    start = text.index("base_url = ")
    end = text.index("\n", start)
    config.write_text(text[:start] + "base_url = http://127.0.0.1:9/apiv1" + text[end:])


def _age_last_success(folder, seconds):
    """Make the status file's last success (and last run) ``seconds`` older, as time passing would."""
    path = folder / "phishme_intel.status.json"
    data = json.loads(path.read_text())
    for key in ("last_run", "last_success"):
        for moment in ("started", "finished"):
            data[key][moment] = status_file.iso(_epoch(data[key][moment]) - seconds)
    path.write_text(json.dumps(data))


def test_before_any_run_status_is_unknown_and_exits_3(config):
    result = run_cli(config, "--status")

    assert result.returncode == 3
    assert "UNKNOWN: no status file yet" in result.stdout
    assert "none stored: the next run backfills" in result.stdout


def test_a_successful_run_writes_the_status_file_and_status_says_healthy(config, dataset):
    assert run_cli(config).returncode == 0

    data = _status_json(config.parent)
    assert data["last_run"]["outcome"] == "success" and data["last_run"]["exit_code"] == 0
    assert data["last_run"]["mode"] == "backfill"
    assert data["last_run"]["delivered"] == len(dataset.live_ids())
    assert data["last_run"]["requests"] > 0
    assert data["last_success"] == data["last_run"]
    assert data["position"] and data["position_since"] and data["backfill"] is None
    assert oct(os.stat(config.parent / "phishme_intel.status.json").st_mode & 0o777) == "0o644"

    result = run_cli(config, "--status")
    assert result.returncode == 0, result.stdout
    assert "HEALTHY: the last run succeeded" in result.stdout
    counts = f"{len(dataset.live_ids())} delivered, 0 withdrawn, 0 skipped as expired, 0 skipped as invalid"
    assert counts in result.stdout
    assert data["position"] in result.stdout


def test_a_failed_run_is_recorded_and_status_says_failing_with_exit_1(config):
    assert run_cli(config).returncode == 0
    success = _status_json(config.parent)["last_success"]
    _unreachable(config)

    assert run_cli(config).returncode == 69

    data = _status_json(config.parent)
    assert data["last_run"]["outcome"] == "failed" and data["last_run"]["exit_code"] == 69
    assert "connection refused" in data["last_run"]["error"]
    assert data["last_success"] == success
    assert data["totals"]["runs"] == 2 and data["totals"]["failed_runs"] == 1
    result = run_cli(config, "--status")
    assert result.returncode == 1
    assert "FAILING: the last run failed with exit 69" in result.stdout


def test_a_last_success_older_than_stale_after_is_stale_with_exit_2(tmp_path, simulator):
    config = write_config(tmp_path, simulator.url, local_status={"stale_after": "60"})
    assert run_cli(config).returncode == 0
    _age_last_success(tmp_path, 61 * 60)

    result = run_cli(config, "--status")

    assert result.returncode == 2
    assert "STALE: the last success was 1 h 1 min ago, more than stale_after (60 min)" in result.stdout


def test_stale_after_is_configurable(tmp_path, simulator):
    config = write_config(tmp_path, simulator.url, local_status={"stale_after": "180"})
    assert run_cli(config).returncode == 0
    _age_last_success(tmp_path, 2 * 3600)

    assert run_cli(config, "--status").returncode == 0


def test_runs_that_never_succeeded_are_stale(config):
    _unreachable(config)
    assert run_cli(config).returncode == 69

    result = run_cli(config, "--status")

    assert result.returncode == 2
    assert "STALE: no run has succeeded yet" in result.stdout
    assert _status_json(config.parent)["last_success"] is None


def test_status_needs_neither_network_nor_lock_and_writes_nothing(config, simulator):
    assert run_cli(config).returncode == 0
    requests = len(simulator.requests)
    before = {p.name: p.read_bytes() for p in config.parent.iterdir()}

    with FileLock(str(config.parent / "phishme_intel.lock")):
        result = run_cli(config, "--status")

    assert result.returncode == 0
    assert len(simulator.requests) == requests
    assert {p.name: p.read_bytes() for p in config.parent.iterdir()} == before


def test_an_interrupted_backfill_shows_its_checkpoint(config, simulator):
    simulator.faults.add("outage", times=1000)

    assert run_cli(config).returncode == 69

    data = _status_json(config.parent)
    assert data["backfill"]["until"] and data["backfill"]["done"]
    assert data["position"] is None
    result = run_cli(config, "--status")
    assert "backfill      in progress: done up to" in result.stdout


def test_the_position_age_is_kept_while_the_position_does_not_move(config, dataset):
    phishme_intel.run(str(config))
    first = _status_json(config.parent)
    phishme_intel.run(str(config))
    quiet = _status_json(config.parent)
    dataset.republish(5)
    phishme_intel.run(str(config))
    moved = _status_json(config.parent)

    assert quiet["position"] == first["position"] and quiet["position_since"] == first["position_since"]
    assert moved["position"] != first["position"]
    assert moved["position_since"] == moved["last_run"]["finished"]


def test_the_status_file_goes_beside_the_log_file_by_default(tmp_path, simulator):
    (tmp_path / "logs").mkdir()
    config = write_config(tmp_path, simulator.url, local_log={"log_file": "logs/sync.log"})

    phishme_intel.run(str(config))

    assert (tmp_path / "logs" / "phishme_intel.status.json").is_file()


def test_the_metrics_file_parses_as_prometheus_text_with_the_run_facts(tmp_path, simulator, dataset):
    config = write_config(tmp_path, simulator.url, local_status={"metrics_file": "phishme_intel.prom"})
    assert run_cli(config).returncode == 0
    _unreachable(config)
    assert run_cli(config).returncode == 69

    families = {f.name: f for f in text_string_to_metric_families((tmp_path / "phishme_intel.prom").read_text())}
    value = {name: family.samples[0].value for name, family in families.items() if family.samples}
    threats = {s.labels["action"]: s.value for s in families["phishme_intel_threats"].samples}
    indicators = {s.labels["verdict"]: s.value for s in families["phishme_intel_indicators"].samples}
    data = _status_json(tmp_path)

    assert value["phishme_intel_last_exit_code"] == 69
    assert abs(value["phishme_intel_last_success_timestamp_seconds"] - _epoch(data["last_success"]["finished"])) < 1
    assert 0 <= value["phishme_intel_last_run_duration_seconds"] < 60
    assert families["phishme_intel_threats"].type == "counter"
    assert threats == {"delivered": len(dataset.live_ids()), "withdrawn": 0, "skipped_expired": 0, "skipped_invalid": 0}
    runs = {s.labels["outcome"]: s.value for s in families["phishme_intel_runs"].samples}
    assert runs == {"success": 1, "failed": 1}
    rejected = sum(sum(reasons.values()) for reasons in data["last_success"]["rejected_indicators"].values())
    assert indicators == {"rejected": rejected, "allowlisted": 0} and rejected > 0
    assert families["phishme_intel_last_run_rejected_indicators"].samples == []  # the failed run delivered nothing


@pytest.mark.parametrize("key", ["status_file", "metrics_file"])
def test_a_status_or_metrics_file_in_a_missing_folder_is_a_config_error(tmp_path, simulator, key):
    config = write_config(tmp_path, simulator.url, local_status={key: "no/such/folder/x"})

    result = run_cli(config)

    assert result.returncode == 78
    assert f"[local_status] {key}: the folder {tmp_path}/no/such/folder does not exist" in result.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="only root is refused")
def test_status_writes_nothing_so_root_may_call_it_without_allow_root(config):
    assert run_cli(config).returncode == 0

    result = subprocess.run(
        [sys.executable, str(ROOT / "phishme_to_product.py"), "-conf", str(config), "--status"],
        capture_output=True, text=True, cwd=ROOT,
    )

    assert result.returncode == 0, result.stderr
    assert "HEALTHY" in result.stdout
