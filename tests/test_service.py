"""``--every``: the service mode, its signals, its failures, and /healthz and /metrics over HTTP.

The service runs as a real process against the simulator; the tests wait for what it
writes (the status file, log lines, HTTP answers), never for a fixed time.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from support import (
    PASSWORD,
    ROOT,
    USER,
    cli_command,
    http_get,
    run_cli,
    start_paused_at,
    store,
    wait_until,
    write_config,
)

from phishme_intel.options import interval
from phishme_intel.service import BACKOFF_CAP, backoff, next_slot
from phishme_intel.simulator import Dataset, Simulator


class ServiceProcess:
    """``phishme-intel -conf config --every ...`` as a real process; reads its log and status file."""

    def __init__(self, config: Path, *args: str) -> None:
        self.folder = config.parent
        self.process = subprocess.Popen(cli_command(config, *args), cwd=ROOT, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)

    def log(self) -> str:
        path = self.folder / "phishme_intel.log"
        return path.read_text() if path.exists() else ""

    def status(self) -> dict | None:
        path = self.folder / "phishme_intel.status.json"
        return json.loads(path.read_text()) if path.exists() else None

    def runs(self) -> int:
        status = self.status()
        return status["totals"]["runs"] if status else 0

    def wait_for_runs(self, count: int) -> dict:
        wait_until(lambda: self.runs() >= count or self.process.poll() is not None, f"{count} runs")
        assert self.process.poll() is None, self.process.communicate()
        return self.status()

    def url(self) -> str:
        found = wait_until(lambda: re.search(r"serving /healthz and /metrics on (http://\S+)", self.log()), "the port")
        return found.group(1)

    def end(self, signum: int = signal.SIGTERM) -> tuple[int, str]:
        """Send ``signum`` while the service waits for its next slot; its exit code and stderr."""
        wait_until(lambda: "next run at" in self.log().strip().rsplit("\n", 1)[-1], "the service to wait for a slot")
        self.process.send_signal(signum)
        _, stderr = self.process.communicate(timeout=30)
        return self.process.returncode, stderr


@pytest.fixture
def service() -> Iterator[Callable[..., ServiceProcess]]:
    started: list[ServiceProcess] = []

    def start(config: Path, *args: str) -> ServiceProcess:
        started.append(ServiceProcess(config, *args))
        return started[-1]

    yield start
    for process in started:
        if process.process.poll() is None:
            process.process.kill()
            process.process.communicate()


def test_the_service_syncs_at_once_then_every_interval_and_sigterm_ends_it_with_exit_0(
    config, service, dataset, simulator, tmp_path
):
    running = service(config, "--every", "2s")
    first = running.wait_for_runs(1)
    dataset.republish(10)
    second = running.wait_for_runs(2)

    code, stderr = running.end(signal.SIGTERM)

    assert (code, stderr) == (0, "")
    assert (first["last_run"]["mode"], second["last_run"]["mode"]) == ("backfill", "updates")
    assert second["last_run"]["outcome"] == "success"
    assert second["totals"]["delivered"] == first["totals"]["delivered"] + 10
    assert "service stopped by SIGTERM" in running.log()
    (tmp_path / "reference").mkdir()
    reference = write_config(tmp_path / "reference", simulator.url)
    assert run_cli(reference).returncode == 0
    assert store(config.parent / "phishme_intel.sqlite3") == store(reference.parent / "phishme_intel.sqlite3")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_between_runs_ends_the_service_at_once(config, service, signum):
    running = service(config, "--every", "1h")
    running.wait_for_runs(1)

    assert running.end(signum) == (0, "")
    assert f"service stopped by {signal.Signals(signum).name}" in running.log()
    assert running.log().count("run started") == 1  # each run logs through the service's one log handler


def test_a_signal_during_a_run_stops_the_run_at_a_safe_point_and_the_service_with_its_exit_code(
    config, tmp_path
):
    paused = start_paused_at(config, "phishme_intel.sync.backfill._decode_and_deliver", tmp_path, "--every", "2s")
    try:
        wait_until((tmp_path / "ready").exists, "the first run to deliver its first page")
        paused.send_signal(signal.SIGTERM)
        wait_until((tmp_path / "heard").exists, "the run to note the signal")
        (tmp_path / "go").touch()
        _out, errors = paused.communicate(timeout=60)
    finally:
        (tmp_path / "go").touch()
        paused.kill()

    assert paused.returncode == 143, errors
    status = json.loads((config.parent / "phishme_intel.status.json").read_text())
    assert (status["last_run"]["outcome"], status["totals"]["runs"]) == ("interrupted", 1)
    assert "service stopped: the run under way stopped on a signal (exit 143)" in (
        config.parent / "phishme_intel.log").read_text()


def metrics(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample ``/metrics`` answers, by name and labels; it must answer 200."""
    status, text = http_get(f"{url}/metrics")
    assert status == 200
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def test_healthz_turns_503_when_the_api_goes_away_and_200_when_it_returns_and_metrics_parse(
    tmp_path, service, dataset: Dataset
):
    simulator = Simulator(dataset, user=USER, password=PASSWORD).start()
    port = int(simulator.url.split(":")[2].split("/")[0])
    config = write_config(tmp_path, simulator.url)
    running = service(config, "--every", "2s", "--listen", "127.0.0.1:0")
    url = running.url()
    try:
        healthy = wait_until(lambda: (answer := http_get(f"{url}/healthz"))[0] == 200 and answer, "/healthz 200")
        simulator.stop()
        failing = wait_until(lambda: (answer := http_get(f"{url}/healthz"))[0] == 503 and answer, "/healthz 503")
        simulator = Simulator(dataset, user=USER, password=PASSWORD, port=port).start()
        wait_until(lambda: http_get(f"{url}/healthz")[0] == 200, "/healthz 200 again")
        # between two runs: while one runs, the next has no time yet (0)
        samples = wait_until(lambda: (found := metrics(url)) and found[("phishme_intel_next_run_timestamp_seconds", ())]
                             and found, "/metrics between two runs")
    finally:
        simulator.stop()

    assert healthy[1].startswith("HEALTHY: the last run succeeded")
    assert failing[1] == "FAILING: the last run failed with exit 69\n"
    assert samples[("phishme_intel_runs_total", (("outcome", "failed"),))] >= 1
    assert samples[("phishme_intel_runs_total", (("outcome", "success"),))] >= 2
    assert samples[("phishme_intel_threats_total", (("action", "delivered"),))] == len(dataset.live_ids())
    assert samples[("phishme_intel_last_exit_code", ())] == 0
    assert time.time() - 60 < samples[("phishme_intel_next_run_timestamp_seconds", ())] < time.time() + 60
    assert http_get(f"{url}/other")[0] == 404
    assert running.end() == (0, "")


def test_rejected_credentials_end_the_service_with_exit_77(tmp_path, simulator, service):
    config = write_config(tmp_path, simulator.url, pm_api={"pass": "not-the-password"})
    running = service(config, "--every", "2s")

    assert running.process.wait(timeout=60) == 77
    assert running.runs() == 1 and "service stopped: exit 77" in running.log()


def test_a_listen_address_in_use_is_a_config_error(config, service):
    running = service(config, "--every", "2s", "--listen", "127.0.0.1:0")
    url = running.url()
    second = run_cli(config, "--every", "2s", "--listen", url.removeprefix("http://"))

    assert second.returncode == 78
    assert "cannot serve HTTP on 127.0.0.1:" in second.stderr
    assert running.end() == (0, "")


@pytest.mark.parametrize("args", [["--listen", "127.0.0.1:9464"], ["--every", "15"], ["--every", "2s", "--status"]])
def test_flags_that_do_not_make_a_service_are_usage_errors(config, args):
    assert run_cli(config, *args).returncode == 2


def test_slots_are_multiples_of_the_interval_shifted_by_the_jitter_offset():
    assert next_slot(1000.0, 900) == 1800
    assert next_slot(1800.0, 900) == 2700
    assert next_slot(1000.0, 900, offset=120) == 1020
    assert next_slot(1020.0, 900, offset=120 + 900) == 1920
    assert interval("15m") == 900 and interval("2s") == 2 and interval("1h") == 3600


def test_failed_runs_in_a_row_leave_out_more_and_more_slots_at_most_an_hour():
    assert [backoff(failures, 60) for failures in range(6)] == [0, 0, 60, 180, 420, 900]
    assert backoff(20, 900) == BACKOFF_CAP
