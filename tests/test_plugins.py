"""The plug-in path: a third-party package adds a product through the entry-point group
``phishme_intel.adapters`` without any change to phishme-intel.

``tests/plugin_sample`` is such a package, installed the simplest way Python knows: a module
and its ``*.dist-info`` (METADATA and entry_points.txt) on ``PYTHONPATH``.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from support import ROOT, cli_command, write_config

from phishme_intel import adapters
from phishme_intel import config as config_module
from phishme_intel.models import ThreatRef

PLUGIN = Path(__file__).resolve().parent / "plugin_sample"


def run_with_plugin(config: Path, *args: str, installed: bool = True) -> subprocess.CompletedProcess[str]:
    """The CLI as a real process, with the sample package installed (on PYTHONPATH) or not."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    if installed:
        env["PYTHONPATH"] = str(PLUGIN)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return subprocess.run(cli_command(config, *args), env=env, capture_output=True, text=True, timeout=120, cwd=ROOT)


def journal(path: Path) -> set[ThreatRef]:
    """The threats the sample adapter holds: delivered and not withdrawn since."""
    held: set[ThreatRef] = set()
    for line in path.read_text().splitlines():
        entry = json.loads(line)
        ref = ThreatRef(entry["kind"], entry["id"])
        if entry["action"] == "deliver":
            held.add(ref)
        else:
            held.discard(ref)
    return held


def test_an_installed_package_adds_its_adapter_to_the_available_ones(monkeypatch):
    assert "sample" not in adapters.available()
    monkeypatch.syspath_prepend(str(PLUGIN))
    assert "sample" in adapters.available()
    adapter = adapters.load("sample")
    assert (adapter.__name__, adapter.name) == ("SampleAdapter", "sample")


def test_a_sync_delivers_every_threat_and_deletion_to_a_third_party_adapter(tmp_path, simulator, dataset):
    config = write_config(tmp_path, simulator.url, integration_sample={"use": "True", "journal": "journal.jsonl"})
    first = run_with_plugin(config)
    assert first.returncode == 0, first.stderr
    live = {ThreatRef(kind, tid) for kind, tid in dataset.live_ids()}
    assert journal(tmp_path / "journal.jsonl") == live

    deleted = {ThreatRef(kind, tid) for kind, tid in dataset.delete(5)}
    dataset.republish(5)
    second = run_with_plugin(config)
    assert second.returncode == 0, second.stderr
    assert journal(tmp_path / "journal.jsonl") == live - deleted


def test_a_failing_third_party_adapter_fails_the_run_and_the_position_stays(tmp_path, simulator):
    config = write_config(tmp_path, simulator.url, integration_sample={
        "use": "True", "journal": "journal.jsonl", "fail_commit": "True",
    })
    result = run_with_plugin(config)
    assert result.returncode == 74
    assert "adapter sample: cannot write" in result.stderr
    assert config_module.read(str(config))["pm_api"]["position"] == ""
    assert not (tmp_path / "journal.jsonl").exists()


def test_bad_settings_of_a_third_party_adapter_are_reported_with_the_other_config_errors(tmp_path, simulator):
    config = write_config(tmp_path, simulator.url, pm_api={"concurrency": "99"},
                          integration_sample={"use": "True", "fail_commit": "maybe"})
    result = run_with_plugin(config)
    assert result.returncode == 78
    for problem in (
        "[pm_api] concurrency: must be a whole number from 1 to 16, not 99",
        "[integration_sample] journal: is required",
        "[integration_sample] fail_commit: must be True or False, not 'maybe'",
    ):
        assert problem in result.stderr


def test_an_adapter_that_is_not_installed_is_a_config_error(tmp_path, simulator):
    config = write_config(tmp_path, simulator.url, integration_sample={"use": "True", "journal": "journal.jsonl"})
    result = run_with_plugin(config, installed=False)
    assert result.returncode == 78
    assert "[integration_sample] use: no adapter named 'sample' is installed" in result.stderr


def test_a_plugin_check_that_crashes_is_one_line_and_its_traceback_is_in_the_log_for_every_command(tmp_path, simulator):
    config = write_config(tmp_path, simulator.url, integration_sample={
        "use": "True", "journal": "journal.jsonl", "crash_check": "True",
    })
    log = tmp_path / "phishme_intel.log"

    for command, args in (("run", ()), ("--check", ("--check",)), ("--status", ("--status",)),
                          ("--dry-run", ("--dry-run",)), ("--reset", ("--reset", "--yes"))):
        result = run_with_plugin(config, *args)

        assert result.returncode == 1, result.stderr
        assert result.stderr == (
            f"phishme-intel: {command}: unexpected RuntimeError; the traceback is in {log}\n"
        ), result.stderr
        assert log.read_text().count("Traceback") == 1
        assert "RuntimeError: the sample plug-in's check crashed" in log.read_text()
        log.unlink()
    assert simulator.requests == []
