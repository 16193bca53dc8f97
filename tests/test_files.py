"""Files it writes: never through a planted symbolic link, with the umask's permissions, a
private lock file, and config.ini rewritten with its owner, group and mode kept.

Every case runs the real CLI. A link planted at an output's path, or where an output folder
will be, is refused with a message naming it (exit 78 when config.ini names that path, 74
when an adapter meets it while writing), and the file the link points to is left as it was.
"""

from __future__ import annotations

import datetime as dt
import os
import stat
import subprocess
from pathlib import Path

import pytest
from support import ROOT, cli_command, run_cli, write_config
from test_bad_config import assert_one_problem

PRECIOUS = "precious: not the sync's to write\n"


@pytest.fixture
def elsewhere(tmp_path: Path) -> Path:
    """A folder the sync user may write but must not be tricked into writing, with one file in it."""
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    (folder / "precious.txt").write_text(PRECIOUS)
    return folder


def untouched(elsewhere: Path) -> bool:
    names = [p.name for p in elsewhere.iterdir()]
    return names == ["precious.txt"] and (elsewhere / "precious.txt").read_text() == PRECIOUS


def plant(link: Path, target: Path) -> Path:
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(target)
    return link


# (id, sections, the path to plant a link at (relative to the config folder), section and key named)
CONFIGURED = [
    ("log_file", {}, "phishme_intel.log", "[local_log] log_file"),
    ("lock_file", {}, "phishme_intel.lock", "[local_file_lock] lock_file"),
    ("status_file", {}, "phishme_intel.status.json", "[local_status] status_file"),
    ("metrics_file", {"local_status": {"metrics_file": "metrics.prom"}}, "metrics.prom", "[local_status] metrics_file"),
    ("jsonl_file", {"integration_json_files": {"use": "True", "threat_files": "False", "jsonl_file": "events.jsonl"}},
     "events.jsonl", "[integration_json_files] jsonl_file"),
    ("cef-file", {"integration_cef_syslog": {"use": "True", "transport": "file", "file": "events.cef"}},
     "events.cef", "[integration_cef_syslog] file"),
    ("sqlite-path", {}, "phishme_intel.sqlite3", "[integration_sqlite] path"),
    ("blocklists-folder", {"integration_blocklists": {"use": "True", "folder": "lists"}}, "lists",
     "[integration_blocklists] folder"),
]


@pytest.mark.parametrize(("sections", "planted", "named"), [c[1:] for c in CONFIGURED], ids=[c[0] for c in CONFIGURED])
def test_a_link_at_a_configured_output_path_is_a_config_error(tmp_path, simulator, elsewhere, sections, planted, named):
    config = write_config(tmp_path, simulator.url, **sections)
    link = plant(tmp_path / planted, elsewhere / "precious.txt" if "." in planted else elsewhere)

    result = run_cli(config)

    assert_one_problem(result, config, f"{named}: {link} is a symbolic link, and phishme-intel never writes through")
    assert untouched(elsewhere)
    assert simulator.requests == []


def test_a_link_planted_at_a_blocklist_file_fails_the_run_and_is_not_followed(tmp_path, simulator, elsewhere):
    config = write_config(tmp_path, simulator.url, integration_blocklists={"use": "True", "folder": "lists"})
    link = plant(tmp_path / "lists" / "domain.txt", elsewhere / "precious.txt")

    result = run_cli(config)

    assert result.returncode == 74, result.stderr
    assert f"cannot write {link}: {link} is a symbolic link, and outputs are never written through one" in result.stderr
    assert "Traceback" not in result.stderr
    assert untouched(elsewhere) and link.is_symlink()
    assert "position =\n" in config.read_text()


def test_a_link_planted_where_a_dated_json_folder_goes_fails_the_run(tmp_path, simulator, elsewhere):
    config = write_config(tmp_path, simulator.url, integration_json_files={"use": "True", "folder": "json"})
    today = dt.datetime.now(dt.timezone.utc).date()
    for days in range(30):
        plant(tmp_path / "json" / f"{today - dt.timedelta(days=days):%Y-%m-%d}", elsewhere)

    result = run_cli(config)

    assert result.returncode == 74, result.stderr
    assert "is a symbolic link, and outputs are never written through one" in result.stderr
    assert untouched(elsewhere)


def test_a_link_planted_where_the_stix_state_folder_goes_fails_the_run(tmp_path, simulator, elsewhere):
    config = write_config(tmp_path, simulator.url, integration_stix2={"use": "True", "bundle": "run"})
    link = plant(tmp_path / "stix2" / ".state", elsewhere)

    result = run_cli(config)

    assert result.returncode == 74, result.stderr
    assert f"cannot prepare the folder {link}: {link} is a symbolic link" in result.stderr
    assert untouched(elsewhere)


def run_with_umask(config: Path, umask: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cli_command(config), capture_output=True, text=True, timeout=120, cwd=ROOT, preexec_fn=lambda: os.umask(umask)
    )


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("umask", [0o002, 0o027, 0o077])
def test_new_files_and_folders_follow_the_umask_and_the_lock_file_is_private(tmp_path, simulator, umask):
    config = write_config(
        tmp_path, simulator.url, local_status={"metrics_file": "metrics.prom"},
        integration_json_files={"use": "True", "folder": "json", "jsonl_file": "events.jsonl"},
        integration_blocklists={"use": "True", "folder": "lists"}, integration_stix2={"use": "True"},
    )

    result = run_with_umask(config, umask)

    assert result.returncode == 0, result.stderr
    files = [tmp_path / name for name in ("phishme_intel.log", "phishme_intel.status.json", "metrics.prom",
                                          "events.jsonl", "lists/domain.txt")]
    files += [*(tmp_path / "json").glob("*/*.json"), *(tmp_path / "stix2").glob("*.json")]  # made by threads
    folders = [tmp_path / "json", next((tmp_path / "json").glob("*")), tmp_path / "lists", tmp_path / "stix2"]
    assert {str(f.relative_to(tmp_path)): oct(mode(f)) for f in files} == {
        str(f.relative_to(tmp_path)): oct(0o666 & ~umask) for f in files
    }
    assert {str(f.relative_to(tmp_path)): oct(mode(f)) for f in folders} == {
        str(f.relative_to(tmp_path)): oct(0o777 & ~umask) for f in folders
    }
    assert mode(tmp_path / "phishme_intel.lock") == 0o600
    assert mode(tmp_path / "phishme_intel.sqlite3") & ~(0o666 & ~umask) == 0
    assert mode(config) == 0o600


def test_a_lock_file_others_could_open_is_made_private(config):
    lock = config.parent / "phishme_intel.lock"
    lock.touch(mode=0o644)
    lock.chmod(0o644)

    result = run_cli(config)

    assert result.returncode == 0, result.stderr
    assert mode(lock) == 0o600


@pytest.mark.skipif(os.geteuid() != 0, reason="changing a file's owner needs root")
def test_a_run_as_root_keeps_config_inis_owner_group_and_mode(config):
    os.chown(config, 65534, 65534)
    config.chmod(0o640)

    result = run_cli(config)

    assert result.returncode == 0, result.stderr
    assert "position = " in config.read_text() and "position =\n" not in config.read_text()
    info = config.stat()
    assert (info.st_uid, info.st_gid, oct(mode(config))) == (65534, 65534, "0o640")


def test_a_config_ini_that_is_a_link_is_followed_on_purpose(tmp_path, simulator):
    real = write_config(tmp_path, simulator.url)
    (tmp_path / "etc").mkdir()
    link = plant(tmp_path / "etc" / "config.ini", real)

    result = run_cli(link)

    assert result.returncode == 0, result.stderr
    assert link.is_symlink()
    assert "position =\n" not in real.read_text()
