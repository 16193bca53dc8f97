"""``--reset``: clear the stored position (after confirmation) so that the next run backfills again."""

from __future__ import annotations

import datetime as dt

from filelock import FileLock
from support import run_cli, run_cli_on_a_terminal

import phishme_intel
from phishme_intel import config as config_module
from phishme_intel.state import SyncState


def _state_lines(config):
    return [line.rstrip() for line in config.read_text().splitlines() if line.startswith(("position", "backfill_"))]


def _other_lines(config):
    return [line for line in config.read_text().splitlines() if not line.startswith(("position", "backfill_"))]


def test_reset_with_yes_clears_the_position_and_the_next_run_backfills(config, dataset):
    phishme_intel.run(str(config))
    others = _other_lines(config)

    result = run_cli(config, "--reset", "--yes")

    assert result.returncode == 0, result.stderr
    assert "the next run backfills every threat since" in result.stdout
    assert config_module.load(str(config)).state == SyncState()
    assert _state_lines(config) == ["position ="]
    assert _other_lines(config) == others
    report = phishme_intel.run(str(config))
    assert (report.mode, report.delivered) == ("backfill", len(dataset.live_ids()))


def test_reset_since_a_date_backfills_from_that_date_and_keeps_init_date(config, simulator):
    phishme_intel.run(str(config))
    init_date = config_module.load(str(config)).api.init_date
    since = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) - dt.timedelta(days=3)

    assert run_cli(config, "--reset", "--yes", "--since", since.isoformat()).returncode == 0
    simulator_before = len(simulator.requests)
    report = phishme_intel.run(str(config))

    searches = [r for r in simulator.requests[simulator_before:] if "beginTimestamp" in r.params]
    assert report.mode == "backfill"
    assert min(int(r.params["beginTimestamp"][0]) for r in searches) == int(since.timestamp())
    assert config_module.load(str(config)).api.init_date == init_date
    assert config_module.load(str(config)).state.position == report.position


def test_reset_asks_on_a_terminal_and_no_changes_nothing(config):
    phishme_intel.run(str(config))
    before = config.read_bytes()

    code, output, _ = run_cli_on_a_terminal(config, "--reset", answer="n")

    assert code == 0
    assert "stores the position" in output and "Reset? [y/N]" in output and "nothing changed" in output
    assert config.read_bytes() == before


def test_reset_asks_on_a_terminal_and_yes_clears(config):
    phishme_intel.run(str(config))

    code, output, _ = run_cli_on_a_terminal(config, "--reset", answer="y")

    assert code == 0, output
    assert config_module.load(str(config)).state.position is None


def test_reset_without_a_terminal_and_without_yes_is_refused_with_exit_2(config):
    phishme_intel.run(str(config))
    before = config.read_bytes()

    result = run_cli(config, "--reset")

    assert result.returncode == 2
    assert "--yes" in result.stderr
    assert config.read_bytes() == before


def test_reset_while_a_run_holds_the_lock_exits_75_and_changes_nothing(config):
    phishme_intel.run(str(config))
    before = config.read_bytes()

    with FileLock(str(config.parent / "phishme_intel.lock")):
        result = run_cli(config, "--reset", "--yes")

    assert result.returncode == 75
    assert config.read_bytes() == before


def test_since_without_reset_is_a_usage_error(config):
    result = run_cli(config, "--since", "2026-01-01")

    assert result.returncode == 2
    assert "--since goes with --reset" in result.stderr


def test_an_unreadable_since_date_is_a_usage_error(config):
    result = run_cli(config, "--reset", "--yes", "--since", "next tuesday-ish")

    assert result.returncode == 2
    assert "argument --since: is not a date in a form that cannot be misread" in result.stderr


def test_an_ambiguous_since_date_is_a_usage_error_and_nothing_changes(config):
    before = config.read_bytes()

    result = run_cli(config, "--reset", "--yes", "--since", "01.10.2026")

    assert result.returncode == 2
    assert "argument --since: is ambiguous (is it day.month or month.day?): '01.10.2026'" in result.stderr
    assert "Traceback" not in result.stderr
    assert config.read_bytes() == before
