"""A broken or hostile API through the real CLI: each case ends in a correct sync or in exit 69.

The simulator's hostile faults (``phishme_intel/simulator/hostile.py``): a poison threat
(published in the year 33658), a threat and a whole page nested 1,100 levels deep, a page
that lies about its totals, a changelog that loops on one position or never ends, an answer
that drips in a byte at a time, an answer larger than the cap. A bad threat is skipped and
everything else synced; a bad answer is retried and then ends the run with exit 69 and one
line naming what the API did, config.ini and the store as the last good commit left them,
and no traceback anywhere.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from support import run_cli, set_api_options, store, write_config

from phishme_intel.simulator import Dataset, Simulator
from phishme_intel.simulator.hostile import POISON_ID

RETRIES = 2
SEARCH, UPDATES = "/threat/search", "/threat/updates"


def configured(folder: Path, simulator: Simulator, **pm_api: str) -> Path:
    """SQLite, JSON files (dated layout), STIX 2.1 and CSV blocklists: every adapter that writes a date."""
    return write_config(
        folder, simulator.url, pm_api={"max_retries": str(RETRIES), "retry_backoff": "0.01", **pm_api},
        integration_json_files={"use": "True", "layout": "dated"},
        integration_stix2={"use": "True"},
        integration_blocklists={"use": "True", "csv": "True"},
    )


@pytest.fixture
def dataset() -> Dataset:
    """80 malware and 20 phish threats over 10 days."""
    return Dataset(seed=29, malware=80, phish=20, days=10)


def run(config: Path) -> tuple[int, str, str]:
    """The CLI's exit code, stderr and log; no traceback in either."""
    result = run_cli(config)
    log = (config.parent / "phishme_intel.log").read_text()
    assert "Traceback" not in result.stderr + log
    return result.returncode, result.stderr, log


def failed_with(config: Path, before: str, code: int, errors: str, *words: str) -> None:
    """Exit 69, one line on stderr with ``words``, config.ini as it was."""
    assert code == 69, errors
    assert errors.count("\n") == 1, errors
    for word in words:
        assert word in errors
    assert config.read_text() == before


@pytest.fixture
def synced(tmp_path: Path, simulator: Simulator) -> Path:
    """A folder a clean run synced; the simulator's request log emptied."""
    config = configured(tmp_path, simulator)
    assert run(config)[0] == 0
    simulator.reset_stats()
    return config


def test_a_poison_threat_is_skipped_and_everything_else_synced(tmp_path, simulator):
    simulator.faults.add("poison_threat", times=3, path=SEARCH)
    config = configured(tmp_path, simulator)

    code, errors, log = run(config)

    assert code == 0, errors
    assert f"threat {POISON_ID}: firstPublished 1000000000000000 is not a time from 1970 to 9999" in log
    assert store(tmp_path / "phishme_intel.sqlite3")["threats"] == simulator.dataset.live_ids()
    assert run(config)[0] == 0


def test_a_poison_row_an_older_release_stored_does_not_block_the_blocklists(synced, simulator):
    with sqlite3.connect(synced.parent / "phishme_intel.sqlite3") as db:
        db.execute("UPDATE threats SET first_published = 1000000000000000, last_published = 1000000000000000 "
                   "WHERE rowid = (SELECT min(rowid) FROM threats WHERE threat_type = 'malware')")
    simulator.dataset.republish(5)

    code, errors, log = run(synced)

    assert code == 0, errors
    assert "left out the indicators of 1 threats whose last_published is not a time" in log


@pytest.mark.parametrize(("kind", "reason"), [
    ("deep_threat", "nested deeper than 32 levels"),
    ("huge_number", "the decoder refused it (Exceeds the limit (4300 digits)"),
], ids=["nested-1100-levels", "a-5000-digit-number"])
def test_a_threat_the_decoder_cannot_take_is_skipped_and_its_page_delivered(tmp_path, simulator, kind, reason):
    simulator.faults.add(kind, times=2, path=SEARCH)
    config = configured(tmp_path, simulator)

    code, errors, log = run(config)

    assert code == 0, errors
    assert f"skipped a threat the API sent: a threat could not be read: {reason}" in log
    assert store(tmp_path / "phishme_intel.sqlite3")["threats"] == simulator.dataset.live_ids()


def test_a_page_nested_1100_levels_deep_is_retried_then_exit_69(synced, simulator):
    before = synced.read_text()
    simulator.dataset.republish(20)
    simulator.faults.add("deep_page", times=RETRIES + 1, path=UPDATES)

    code, errors, _log = run(synced)

    failed_with(synced, before, code, errors, f"failed {RETRIES + 1} times, last: the answer is not valid JSON")


def test_a_page_claiming_a_billion_pages_ends_the_backfill_at_once(tmp_path, simulator):
    simulator.faults.add("lying_totals", times=1, path=SEARCH)
    config = configured(tmp_path, simulator)

    code, errors, _log = run(config)

    assert code == 69, errors
    assert "said totalPages 1000000000 for totalElements" in errors and "lying about its pages" in errors
    assert errors.count("\n") == 1
    assert "backfill_done" in config.read_text() and "\nposition =\n" in config.read_text()
    assert len(simulator.requests) < 50  # not a billion
    simulator.faults.clear()
    assert run(config)[0] == 0
    assert store(tmp_path / "phishme_intel.sqlite3")["threats"] == simulator.dataset.live_ids()


def test_a_changelog_that_hands_back_its_position_ends_the_run(synced, simulator):
    before = synced.read_text()
    simulator.faults.add("looping_position", times=1000, path=UPDATES)

    code, errors, _log = run(synced)

    failed_with(synced, before, code, errors, "handed the position", "going round in circles")
    assert len(simulator.requests) < 10
    simulator.faults.clear()


def test_a_changelog_that_never_ends_stops_at_max_changes_per_run(synced, simulator):
    config = synced
    set_api_options(config, max_changes_per_run="1000")
    simulator.faults.add("endless_changelog", times=1000, path=UPDATES)

    code, errors, _log = run(config)

    assert code == 69, errors
    assert "gave more than 1,000 changes in one run" in errors and "max_changes_per_run" in errors
    assert errors.count("\n") == 1
    assert sum(r.path == UPDATES for r in simulator.requests) <= 13
    simulator.faults.clear()


@pytest.mark.parametrize(("kind", "option", "words"), [
    ("drip", {"timeout": "1"}, "no whole answer within 1 s ([pm_api] timeout)"),
    ("oversized", {"max_answer_mb": "1"}, "the answer is larger than 1 MiB ([pm_api] max_answer_mb)"),
])
def test_a_dripping_or_oversized_answer_is_retried_then_exit_69_naming_its_bound(
    synced, simulator, kind, option, words
):
    config = synced
    set_api_options(config, **option)
    before = config.read_text()
    simulator.dataset.republish(20)
    simulator.faults.add(kind, times=RETRIES + 1, path=UPDATES, seconds=0.05, size=2 * 1024 * 1024)

    code, errors, _log = run(config)

    failed_with(config, before, code, errors, words)


@pytest.mark.parametrize("kind", ["drip", "oversized"])
def test_a_dripping_or_oversized_answer_that_passes_ends_in_a_correct_sync(synced, simulator, kind):
    config = synced
    set_api_options(config, timeout="1", max_answer_mb="1")
    simulator.dataset.republish(20)
    simulator.faults.add(kind, times=RETRIES, path=UPDATES, seconds=0.05, size=2 * 1024 * 1024)

    code, errors, _log = run(config)

    assert code == 0, errors
    assert f"position = {simulator.dataset.updates_end()}\n" in config.read_text()


def test_an_error_page_full_of_escape_sequences_is_shown_clean_and_short_everywhere(synced, simulator):
    simulator.dataset.republish(5)
    simulator.faults.add("escape_page", times=1, path=UPDATES)

    code, errors, log = run(synced)
    health = run_cli(synced, "--status")
    status = (synced.parent / "phishme_intel.status.json").read_text()

    assert code == 69, errors
    assert "answered HTTP 410: <html><title> ]0;owned [2J [31mBad request</title>" in errors
    assert len(errors) < 400
    for shown in (errors, log, status, health.stdout):
        assert not any(character in shown for character in "\x1b\x07\u202e"), repr(shown)


def test_an_answer_that_is_not_utf8_is_retried_then_exit_69(tmp_path, simulator):
    simulator.faults.add("invalid_utf8", times=1000, path=SEARCH)  # every answer: the first page's are fetched ahead
    config = configured(tmp_path, simulator)

    code, errors, _log = run(config)
    simulator.faults.clear()

    assert code == 69, errors
    assert f"failed {RETRIES + 1} times, last: the answer is not valid UTF-8" in errors
    assert errors.count("\n") == 1
    assert "\nposition =\n" in config.read_text()
