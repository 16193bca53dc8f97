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


README = (ROOT / "README.rst").read_text()


def _readme_real_use() -> list[str]:
    """The shell commands of the README's "Real use" section, one per line, comments cut."""
    section = README[README.index("Real use\n"):README.index("Configuration\n")]
    return [line.split("  #")[0].strip() for line in section.splitlines() if line.startswith("   ") and line.strip()]


def _readme_command(start: str) -> str:
    found = [line for line in _readme_real_use() if line.startswith(start)]
    assert len(found) == 1, f"the README's Real use has {len(found)} lines starting {start!r}"
    return found[0]


def test_the_crontab_line_is_the_one_in_the_readme():
    cron = [line for line in (CONTRIB / "crontab").read_text().splitlines() if line.startswith("*/15")]

    assert cron == ["*/15 * * * * /opt/phishme-intel/bin/phishme-intel -conf /var/lib/phishme-intel/config.ini"]
    assert cron[0] in _readme_real_use()


def test_the_readmes_real_use_installs_what_contrib_runs():
    service = _unit("phishme-intel.service")["Service"]
    program, config = re.fullmatch(r"(\S+) -conf (\S+)", service["ExecStart"]).groups()
    user, folder = service["User"], "/var/lib/" + service["StateDirectory"]
    venv = re.fullmatch(r"python3 -m venv (\S+)", _readme_command("python3 -m venv")).group(1)

    assert program == f"{venv}/bin/phishme-intel"
    assert _readme_command("useradd").split()[-1] == user
    assert f"--home-dir {folder} " in _readme_command("useradd")
    assert _readme_command("install -d") == f"install -d -o {user} -g {user} -m 700 {folder}"
    assert _readme_command(f"{venv}/bin/pip install") == f"{venv}/bin/pip install ."
    assert _readme_command("install -o") == f"install -o {user} -g {user} -m 600 config.ini.example {config}"
    assert _readme_command("runuser") == f"runuser -u {user} -- {program} -conf {config} --check"
    assert _readme_command("crontab -u") == f"crontab -u {user} contrib/crontab"
    units = "contrib/phishme-intel.service contrib/phishme-intel.timer"
    assert _readme_command("cp contrib/") == f"cp {units} /etc/systemd/system/"
    assert f"{program} -conf {config}" in (CONTRIB / "crontab").read_text()


def test_the_service_shows_how_to_hand_over_the_password_as_a_systemd_credential():
    lines = (CONTRIB / "phishme-intel.service").read_text().splitlines()

    assert "#LoadCredential=PHISHME_INTEL_PASS:/etc/phishme-intel/pass" in lines
    assert "``PHISHME_INTEL_PASS``" in (ROOT / "docs" / "configuration.rst").read_text()


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
    service = (CONTRIB / "phishme-intel.service").read_text()
    service = service.replace("/opt/phishme-intel/bin/phishme-intel", str(executable))
    (tmp_path / "phishme-intel.service").write_text(service)
    shutil.copy(CONTRIB / "phishme-intel.timer", tmp_path)

    result = subprocess.run(
        ["systemd-analyze", "verify", "phishme-intel.service", "phishme-intel.timer"],
        capture_output=True, text=True, cwd=tmp_path,
    )

    assert (result.returncode, result.stdout + result.stderr) == (0, "")
