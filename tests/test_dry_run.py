"""``--dry-run``: the whole fetch and transform, a report of what would be delivered, and no write at all."""

from __future__ import annotations

from support import run_cli, store, write_config

import phishme_intel


def _files(folder):
    """Every file under ``folder`` with its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_dry_run_backfill_leaves_every_file_byte_identical(tmp_path, simulator):
    config = write_config(tmp_path, simulator.url, local_status={"metrics_file": "phishme_intel.prom"})
    before = _files(tmp_path)

    result = run_cli(config, "--dry-run")

    assert result.returncode == 0, result.stderr
    assert _files(tmp_path) == before
    assert "nothing was written" in result.stdout


def test_a_dry_run_of_updates_leaves_store_config_log_status_and_lock_byte_identical(tmp_path, simulator, dataset):
    config = write_config(tmp_path, simulator.url, pm_jitter={"use": "True"})
    assert run_cli(config).returncode == 0
    dataset.delete(3)
    dataset.republish(5)
    before = _files(tmp_path)
    assert {"config.ini", "phishme_intel.sqlite3", "phishme_intel.log", "phishme_intel.status.json"} <= set(before)

    result = run_cli(config, "--dry-run")

    assert result.returncode == 0, result.stderr
    assert _files(tmp_path) == before
    assert "would withdraw 3 threats" in result.stdout


def test_a_dry_run_reports_what_the_real_run_then_delivers(config, dataset):
    preview = phishme_intel.dry_run(str(config))
    report = phishme_intel.run(str(config))

    assert preview.report.delivered == report.delivered == len(dataset.live_ids())
    assert sum(preview.threats.values()) == report.delivered
    assert set(preview.threats) == {"malware", "phish"}
    assert preview.would_store.position == report.position
    assert preview.adapters == ["sqlite"]
    assert sum(preview.indicators.values()) > report.delivered


def test_the_dry_run_summary_names_counts_adapters_and_the_position(config, dataset):
    result = run_cli(config, "--dry-run")

    malware = sum(1 for kind, _ in dataset.live_ids() if kind == "malware")
    phish = len(dataset.live_ids()) - malware
    assert f"would deliver {len(dataset.live_ids())} threats ({malware} malware, {phish} phish)" in result.stdout
    assert "to sqlite" in result.stdout
    assert "would store position " in result.stdout


def test_a_dry_run_backfill_names_the_span_it_understood(tmp_path, simulator):
    config = write_config(tmp_path, simulator.url, pm_api={"init_date": "2026-10-01"})

    result = run_cli(config, "--dry-run")

    assert result.returncode == 0, result.stderr
    assert "\nbackfill from 2026-10-01T00:00:00Z up to 20" in result.stdout
    real = phishme_intel.run(str(config))
    rejected = sum(real.rejected.values())
    wildcards = real.rejected["domain", "wildcard"]
    assert rejected > wildcards > 0  # the simulator's messy values: *glued domains, <redacted> addresses...
    assert f"would leave out {rejected} values that are not indicators (" in result.stdout
    assert f"{wildcards} domain wildcard" in result.stdout
    assert "and emit 0 allow-listed indicators nowhere (none)" in result.stdout


def test_a_dry_run_does_not_open_the_adapters(tmp_path, simulator):
    config = write_config(tmp_path, simulator.url)

    phishme_intel.dry_run(str(config))

    assert not (tmp_path / "phishme_intel.sqlite3").exists()


def test_a_real_run_after_a_dry_run_is_unaffected_by_it(config, dataset):
    phishme_intel.dry_run(str(config))
    phishme_intel.run(str(config))

    assert store(config.parent / "phishme_intel.sqlite3")["threats"] == dataset.live_ids()
