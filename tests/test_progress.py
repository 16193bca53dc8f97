"""The progress line: a bar with counts and an ETA on a terminal, nothing at all under cron."""

from __future__ import annotations

from support import run_cli, run_cli_on_a_terminal, write_config

import phishme_intel
from phishme_intel.monitoring.progress import fraction, line
from phishme_intel.state import Report

DAY = 86400


def test_a_quarter_done_backfill_shows_a_quarter_bar_counts_and_the_time_left():
    now = 1_800_000_000.0
    report = Report(mode="backfill", started=now - 60, delivered=1234, withdrawn=5,
                    backfill_from=0, backfill_until=100 * DAY, backfill_reached=25 * DAY)

    text = line(report, now, 100)

    bar = text[text.index("[") + 1:text.index("]")]
    assert fraction(report) == 0.25
    assert len(bar) >= 10 and bar == "#" * (len(bar) // 4) + "-" * (len(bar) - len(bar) // 4)
    assert text.endswith("]  25%  ETA 3 min  up to 1970-01-26  1,234 delivered, 5 withdrawn")


def test_before_the_first_window_the_eta_is_unknown():
    report = Report(mode="backfill", started=0, backfill_from=0, backfill_until=DAY)

    assert "  0%  ETA --  up to 1970-01-01" in line(report, 10, 100)


def test_an_updates_run_shows_its_counts_without_a_bar():
    report = Report(mode="updates", delivered=7, withdrawn=2)

    assert line(report, 0, 100) == "updates: 7 delivered, 2 withdrawn"


def test_the_line_fits_a_narrow_terminal():
    report = Report(mode="backfill", backfill_from=0, backfill_until=DAY, backfill_reached=DAY // 2)

    assert len(line(report, 1, 40)) == 39


def test_a_backfill_on_a_terminal_draws_the_progress_line(config, dataset):
    code, output, _ = run_cli_on_a_terminal(config)

    assert code == 0, output
    assert "backfill [########################################] 100%  ETA 0 s  up to " in output
    assert f"{len(dataset.live_ids())} delivered, 0 withdrawn\r\n" in output


def test_under_cron_nothing_is_printed(config):
    result = run_cli(config)

    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_a_run_started_from_a_terminal_does_not_wait_for_the_jitter(tmp_path, simulator):
    config = write_config(tmp_path, simulator.url, pm_jitter={"use": "True", "scheduler_offset": "14"})
    phishme_intel.run(str(config))

    code, output, _ = run_cli_on_a_terminal(config)

    assert code == 0, output
    assert "updates: 0 delivered, 0 withdrawn" in output
    assert "jitter: waiting" not in (tmp_path / "phishme_intel.log").read_text()
