"""contrib/: the crontab line and the systemd service + timer pair are valid and say what the README says."""

from __future__ import annotations

import configparser
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from support import ROOT

CONTRIB = ROOT / "contrib"


def _unit(name):
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str
    parser.read(CONTRIB / name)
    return parser


def test_the_crontab_line_is_the_one_in_the_readme():
    cron = [line for line in (CONTRIB / "crontab").read_text().splitlines() if line.startswith("*/15")]
    readme = [line.strip() for line in (ROOT / "README.rst").read_text().splitlines() if "*/15" in line]

    assert cron == ["*/15 * * * * phishme-intel -conf /etc/phishme-intel/config.ini"]
    assert cron[0] in readme


def test_the_service_runs_unprivileged_with_a_read_only_file_system_but_its_state_folder():
    service = _unit("phishme-intel.service")["Service"]

    assert service["Type"] == "oneshot"
    assert service["User"] not in ("", "root") and "DynamicUser" not in service
    assert service["ProtectSystem"] == "strict" and service["ProtectHome"] == "yes"
    assert service["PrivateTmp"] == "yes" and service["NoNewPrivileges"] == "yes"
    assert service["CapabilityBoundingSet"] == ""
    config = re.search(r"-conf (\S+)", service["ExecStart"]).group(1)
    assert Path(config).parent == Path("/var/lib") / service["StateDirectory"]


def test_the_timer_starts_it_every_15_minutes_with_a_randomized_delay():
    timer = _unit("phishme-intel.timer")["Timer"]

    assert timer["OnCalendar"] == "*:0/15"
    assert timer["RandomizedDelaySec"] == "5min"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_accepts_the_units_without_a_warning(tmp_path):
    executable = Path(sys.executable).parent / "phishme-intel"
    service = (CONTRIB / "phishme-intel.service").read_text().replace("/usr/local/bin/phishme-intel", str(executable))
    (tmp_path / "phishme-intel.service").write_text(service)
    shutil.copy(CONTRIB / "phishme-intel.timer", tmp_path)

    result = subprocess.run(
        ["systemd-analyze", "verify", "phishme-intel.service", "phishme-intel.timer"],
        capture_output=True, text=True, cwd=tmp_path,
    )

    assert (result.returncode, result.stdout + result.stderr) == (0, "")
