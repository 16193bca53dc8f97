"""The sync as a library: one call from Python, a report with the counts, errors with exit codes."""

from __future__ import annotations

import pytest
from support import write_config

import phishme_intel
from phishme_intel.simulator import Simulator


def test_run_is_one_call_that_returns_the_counts(config, dataset, capsys):
    report = phishme_intel.run(str(config))

    assert isinstance(report, phishme_intel.Report)
    assert (report.mode, report.delivered, report.withdrawn) == ("backfill", len(dataset.live_ids()), 0)
    assert report.requests > 0 and report.finished >= report.started
    assert report.position is not None
    assert capsys.readouterr() == ("", "")


def test_a_second_run_follows_the_updates_and_counts_the_deletions(config, dataset):
    phishme_intel.run(str(config))
    deleted = dataset.delete(4)
    changed = dataset.republish(6)

    report = phishme_intel.run(str(config))

    assert report.mode == "updates"
    assert report.withdrawn == len(deleted)
    assert report.delivered == len(set(changed) - set(deleted))


def test_the_progress_hook_sees_the_counts_grow_and_the_final_report(config, dataset):
    seen = []

    report = phishme_intel.run(str(config), on_progress=lambda r: seen.append((r.delivered, r.backfill_reached)))

    delivered = [count for count, _ in seen]
    assert delivered == sorted(delivered) and len(set(delivered)) > 2
    assert seen[-1] == (report.delivered, report.backfill_until)


def test_errors_are_phishme_intel_errors_with_an_exit_code(tmp_path, dataset):
    with Simulator(dataset, user="someone-else", password="x") as sim:
        config = write_config(tmp_path, sim.url)

        with pytest.raises(phishme_intel.AuthError) as raised:
            phishme_intel.run(str(config))

    assert isinstance(raised.value, phishme_intel.Error)
    assert raised.value.exit_code == 77


def test_a_config_error_lists_its_problems(tmp_path):
    config = write_config(tmp_path, "http://127.0.0.1:9/apiv1", local_status={"stale_after": "0"})

    with pytest.raises(phishme_intel.ConfigError) as raised:
        phishme_intel.run(str(config))

    assert raised.value.problems == ["[local_status] stale_after: must be a whole number from 1 to 10080, not 0"]


def test_status_dry_run_and_reset_are_library_calls_too(config, dataset):
    assert phishme_intel.status(str(config)).verdict == "unknown"
    preview = phishme_intel.dry_run(str(config))
    assert preview.report.delivered == len(dataset.live_ids())

    phishme_intel.run(str(config))
    health = phishme_intel.status(str(config))
    assert (health.verdict, health.exit_code) == ("healthy", 0)
    assert health.status.last_run.delivered == len(dataset.live_ids())

    phishme_intel.reset(str(config))
    assert phishme_intel.run(str(config)).mode == "backfill"
