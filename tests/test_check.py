"""``--check`` tells the truth: the dates and span as understood, the adapters, where secrets
came from, and a config folder the run could not store its position in (exit 78)."""

from __future__ import annotations

import datetime as dt

from support import PASSWORD, Unprivileged, run_cli, write_config
from test_bad_config import assert_one_problem, snapshot

POSITION = "0b3c0c7e-8a4c-4a47-9c66-0d5e62d3a2b1"


def test_check_shows_init_date_in_utc_the_span_the_adapters_and_the_secrets_origin(tmp_path, simulator):
    start = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=60)).replace(microsecond=0)
    local = start.astimezone(dt.timezone(dt.timedelta(hours=2)))
    config = write_config(tmp_path, simulator.url, pm_api={"init_date": local.isoformat()},
                          integration_json_files={"use": "True"})

    result = run_cli(config, "--check")

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[1:] == [
        f"init_date: {start:%Y-%m-%dT%H:%M:%SZ} (UTC)",
        "sync: no position is stored: the next run backfills 60 days of threats up to now",
        "adapters: sqlite, json_files",
        "[pm_api] pass: from config.ini",
        "[pm_api] user: from config.ini",
    ]
    assert PASSWORD not in result.stdout + result.stderr


def test_check_says_a_stored_position_is_followed(tmp_path, simulator):
    config = write_config(tmp_path, simulator.url, pm_api={"position": POSITION})

    result = run_cli(config, "--check")

    assert "sync: a position is stored: the next run follows the updates feed from it" in result.stdout.splitlines()


def test_a_config_folder_the_user_cannot_write_is_exit_78_for_check_and_run(unprivileged: Unprivileged, simulator):
    (unprivileged.folder / "state").mkdir()
    config = write_config(
        unprivileged.folder, simulator.url, local_log={"log_file": "state/phishme_intel.log"},
        local_file_lock={"lock_file": "state/phishme_intel.lock"}, integration_sqlite={"path": "state/store.sqlite3"},
    )
    unprivileged.folder.chmod(0o555)
    before = snapshot(unprivileged.folder)
    expected = f"the folder {unprivileged.folder} of config.ini is not writable by the user"

    try:
        checked = unprivileged.run(config, "--check")
        ran = unprivileged.run(config)
    finally:
        unprivileged.folder.chmod(0o755)

    assert_one_problem(checked, config, expected)
    assert_one_problem(ran, config, expected)
    assert snapshot(unprivileged.folder) == before
    assert simulator.requests == []
