"""Writing the position back into config.ini: comments kept, atomic, permissions kept."""

from __future__ import annotations

import os

import pytest
from support import run_cli, write_config

from phishme_intel.errors import CheckpointError
from phishme_intel.state import ConfigCheckpoint, SyncState

CONFIG = """\
# Top comment, kept.
[pm_api]
user = me
; a semicolon comment
position =

# Between sections.
[local_log]
log_level = info
"""


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "config.ini"
    path.write_text(CONFIG)
    os.chmod(path, 0o640)
    return path


def test_only_the_position_line_changes(config):
    ConfigCheckpoint(str(config)).save(SyncState(position="0b3c0c7e-8a4c-4a47-9c66-0d5e62d3a2b1"))

    assert config.read_text() == CONFIG.replace("position =\n", "position = 0b3c0c7e-8a4c-4a47-9c66-0d5e62d3a2b1\n")


def test_backfill_keys_come_after_the_position_in_order_and_go_when_done(config):
    checkpoint = ConfigCheckpoint(str(config))
    checkpoint.save(SyncState(backfill_until=200, backfill_done=100))
    assert "position =\nbackfill_until = 200\nbackfill_done = 100\n\n# Between" in config.read_text()

    checkpoint.save(SyncState(position="0b3c0c7e-8a4c-4a47-9c66-0d5e62d3a2b1"))

    assert config.read_text() == CONFIG.replace("position =\n", "position = 0b3c0c7e-8a4c-4a47-9c66-0d5e62d3a2b1\n")


def test_permissions_are_kept_and_no_temporary_file_is_left(config):
    ConfigCheckpoint(str(config)).save(SyncState(position="0b3c0c7e-8a4c-4a47-9c66-0d5e62d3a2b1"))

    assert os.stat(config).st_mode & 0o777 == 0o640
    assert sorted(p.name for p in config.parent.iterdir()) == ["config.ini"]


def test_a_symlinked_config_keeps_its_link(config, tmp_path):
    link = tmp_path / "link.ini"
    link.symlink_to(config)

    ConfigCheckpoint(str(link)).save(SyncState(position="0b3c0c7e-8a4c-4a47-9c66-0d5e62d3a2b1"))

    assert link.is_symlink()
    assert "0b3c0c7e" in config.read_text()


def test_unwritable_folder_is_a_checkpoint_error_and_the_file_is_untouched(config):
    if os.geteuid() == 0:
        pytest.skip("root writes anywhere")
    os.chmod(config.parent, 0o500)
    try:
        with pytest.raises(CheckpointError, match="cannot store the sync position"):
            ConfigCheckpoint(str(config)).save(SyncState(position="0b3c0c7e-8a4c-4a47-9c66-0d5e62d3a2b1"))
    finally:
        os.chmod(config.parent, 0o700)
    assert config.read_text() == CONFIG


def test_a_config_that_became_invalid_is_a_checkpoint_error(config):
    config.write_text("[pm_api]\n[pm_api]\n")

    with pytest.raises(CheckpointError, match="no longer valid INI"):
        ConfigCheckpoint(str(config)).save(SyncState(position="0b3c0c7e-8a4c-4a47-9c66-0d5e62d3a2b1"))
    assert config.read_text() == "[pm_api]\n[pm_api]\n"


def test_temporary_files_left_by_a_killed_rewrite_are_removed(config):
    leftover = config.parent / ".config.ini.k3x9q.tmp"
    leftover.write_text("half a config")
    unrelated = config.parent / ".other.ini.k3x9q.tmp"
    unrelated.write_text("not ours")

    ConfigCheckpoint(str(config)).save(SyncState(position="0b3c0c7e-8a4c-4a47-9c66-0d5e62d3a2b1"))

    assert not leftover.exists()
    assert unrelated.exists()


def test_leftovers_of_any_type_are_removed_and_a_run_goes_on(tmp_path, simulator):
    config = write_config(tmp_path, simulator.url)
    folder = tmp_path / ".config.ini.dir01.tmp"
    (folder / "inside").mkdir(parents=True)
    (folder / "inside" / "file").write_text("x")
    target = tmp_path / "kept-target"
    target.write_text("not ours")
    (tmp_path / ".config.ini.link1.tmp").symlink_to(target)

    result = run_cli(config)

    assert result.returncode == 0, result.stderr
    assert [p.name for p in tmp_path.glob(".config.ini.*.tmp")] == []
    assert target.read_text() == "not ours"
    assert "removed " + str(folder) in (tmp_path / "phishme_intel.log").read_text()
