"""Times as this tool writes them: UTC, and saying so, whatever the machine's time zone."""

from __future__ import annotations

import datetime as dt
import re

from support import run_cli


def test_log_time_stamps_are_utc_with_a_z_under_any_local_time_zone(config):
    result = run_cli(config, "--check", env={"TZ": "EST+5"})

    assert result.returncode == 0, result.stderr
    lines = (config.parent / "phishme_intel.log").read_text().splitlines()
    assert lines
    now = dt.datetime.now(dt.timezone.utc)
    for line in lines:
        stamp = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3})Z ", line)
        assert stamp, line
        written = dt.datetime.fromisoformat(stamp.group(1)).replace(tzinfo=dt.timezone.utc)
        assert abs(now - written) < dt.timedelta(minutes=5), line


def test_reset_since_a_date_with_an_offset_says_the_instant_in_utc(config):
    result = run_cli(config, "--reset", "--yes", "--since", "2026-01-02 03:04+02:00")

    assert result.returncode == 0, result.stderr
    assert "reset: the next run backfills every threat since 2026-01-02T01:04:00Z" in result.stdout.splitlines()
