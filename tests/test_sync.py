"""The sync end to end, through the library call, against the simulator over loopback HTTP."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path

import pytest
from configupdater import ConfigUpdater
from support import PASSWORD, USER, store, write_config

import phishme_intel
from phishme_intel.adapters.base import Adapter
from phishme_intel.client import ApiClient
from phishme_intel.config import load
from phishme_intel.errors import AdapterError, ApiUnavailable
from phishme_intel.models import Threat, ThreatRef
from phishme_intel.simulator import Simulator
from phishme_intel.state import ConfigCheckpoint, Report, SyncState
from phishme_intel.sync import synchronize


def sync_committing_every_window(config: Path) -> Report:
    """The sync of ``config``'s adapters, committing the backfill after every window that delivered a threat."""
    loaded = load(str(config))
    client = ApiClient(loaded.api, loaded.proxy)
    try:
        adapters = [adapter(settings) for adapter, settings in loaded.adapters.values()]
        return synchronize(
            client, adapters, ConfigCheckpoint(loaded.path), loaded.api, loaded.state, commit_every_threats=1
        )
    finally:
        client.close()


def _state(config):
    updater = ConfigUpdater()
    updater.read(config)
    api = updater["pm_api"]
    return {key: api[key].value if key in api else None for key in ("position", "backfill_until", "backfill_done")}


def test_first_run_backfills_every_live_threat_and_stores_a_position(config, dataset):
    report = phishme_intel.run(str(config))

    assert report.mode == "backfill"
    held = store(config.parent / "phishme_intel.sqlite3")
    assert held["threats"] == dataset.live_ids()
    assert held["duplicate_indicators"] == 0
    assert held["indicators"] > len(dataset.live_ids())
    state = _state(config)
    assert state["position"] and report.position == state["position"]
    assert state["backfill_until"] is None and state["backfill_done"] is None


def test_second_run_follows_updates_with_changes_and_deletions(config, dataset, simulator):
    phishme_intel.run(str(config))
    republished = dataset.republish(25)
    deleted = dataset.delete(10)
    added = dataset.add(malware=5, phish=2)

    simulator.reset_stats()
    report = phishme_intel.run(str(config))

    assert report.mode == "updates"
    assert report.withdrawn == 10
    assert report.delivered == len(set(republished) - set(deleted)) + len(added)
    held = store(config.parent / "phishme_intel.sqlite3")
    assert held["threats"] == dataset.live_ids()
    assert held["deleted"] == set(deleted)
    searches = [r for r in simulator.requests if r.path == "/threat/search"]
    assert all("threatId" in r.params for r in searches)


def test_run_with_nothing_new_changes_nothing(config):
    phishme_intel.run(str(config))
    before = config.read_bytes()
    database = config.parent / "phishme_intel.sqlite3"
    rows = store(database)

    report = phishme_intel.run(str(config))

    assert (report.delivered, report.withdrawn, report.commits) == (0, 0, 0)
    assert config.read_bytes() == before
    assert store(database) == rows


def test_replaying_an_already_delivered_page_changes_nothing(config, dataset):
    phishme_intel.run(str(config))
    dataset.republish(30)
    dataset.delete(5)
    old_position = _state(config)["position"]
    phishme_intel.run(str(config))
    database = config.parent / "phishme_intel.sqlite3"
    after_first = _dump(database)

    _set_position(config, old_position)
    report = phishme_intel.run(str(config))

    assert report.delivered > 0 and report.withdrawn == 5
    assert _dump(database) == after_first


def test_backfill_interrupted_by_an_outage_resumes_from_its_checkpoint(tmp_path, simulator, dataset):
    config = write_config(tmp_path, simulator.url, pm_api={"max_retries": "1", "concurrency": "1"})
    _fail_after(simulator, 8)

    with pytest.raises(ApiUnavailable):
        sync_committing_every_window(config)

    state = _state(config)
    assert state["position"] == "" and state["backfill_done"]
    done = int(state["backfill_done"])
    assert int(state["backfill_until"]) > done
    assert done > min(int(r.params["beginTimestamp"][0]) for r in simulator.requests if "beginTimestamp" in r.params)
    simulator.faults.clear()
    simulator.reset_stats()

    phishme_intel.run(str(config))

    begins = [int(r.params["beginTimestamp"][0]) for r in simulator.requests if "beginTimestamp" in r.params]
    assert min(begins) == done
    assert store(tmp_path / "phishme_intel.sqlite3")["threats"] == dataset.live_ids()
    assert _state(config)["position"]


def test_deletion_during_an_interrupted_backfill_is_not_lost(tmp_path, simulator, dataset):
    config = write_config(tmp_path, simulator.url, pm_api={"max_retries": "0", "concurrency": "1"})
    _fail_after(simulator, 12)
    with pytest.raises(ApiUnavailable):
        sync_committing_every_window(config)
    delivered = store(tmp_path / "phishme_intel.sqlite3")["threats"]
    gone = sorted(delivered)[:3]
    assert len(gone) == 3
    dataset.delete_keys(gone)
    simulator.faults.clear()

    phishme_intel.run(str(config))

    held = store(tmp_path / "phishme_intel.sqlite3")
    assert held["threats"] == dataset.live_ids()
    assert set(gone) <= held["deleted"]


def test_config_is_byte_identical_after_a_run_except_the_position_line(config):
    before = config.read_text().splitlines(keepends=True)

    phishme_intel.run(str(config))

    after = config.read_text().splitlines(keepends=True)
    assert len(after) == len(before)
    changed = [(old, new) for old, new in zip(before, after, strict=True) if old != new]
    assert len(changed) == 1
    old, new = changed[0]
    assert old == "position =\n" and new.startswith("position = ")


def test_only_the_configured_products_are_synced(tmp_path, simulator, dataset):
    config = write_config(tmp_path, simulator.url, pm_product={"brand_intelligence": "False"})

    phishme_intel.run(str(config))

    held = store(tmp_path / "phishme_intel.sqlite3")["threats"]
    assert held == {key for key in dataset.live_ids() if key[0] == "malware"}
    searches = [r for r in simulator.requests if "beginTimestamp" in r.params]
    assert {r.params["threatType"][0] for r in searches} == {"malware"}


def test_backfill_pages_each_window_with_one_search_per_hundred_threats(config, simulator, dataset):
    phishme_intel.run(str(config))

    searches = [r for r in simulator.requests if "beginTimestamp" in r.params]
    windows = {(r.params["beginTimestamp"][0], r.params["endTimestamp"][0]) for r in searches}
    assert len(searches) <= len(windows) + len(dataset.live_ids()) // 100 + 1
    assert simulator.connections <= 4 + 1


def _dump(database):
    with sqlite3.connect(database) as db:
        return (
            sorted(db.execute("SELECT threat_type, threat_id, label, last_published, json FROM threats")),
            sorted(db.execute("SELECT * FROM indicators")),
            sorted(db.execute("SELECT threat_type, threat_id FROM deleted_threats")),
        )


def _set_position(config, position):
    updater = ConfigUpdater()
    updater.read(config)
    updater["pm_api"]["position"] = position
    config.write_text(str(updater))


def _fail_after(simulator, searches):
    """Let ``searches`` window searches through, then make every later one fail."""
    simulator.faults.add("outage", times=100_000, path="/threat/search", after=searches)


def test_many_small_changelog_pages_are_all_followed(tmp_path, dataset):
    with Simulator(dataset, user=USER, password=PASSWORD, updates_page_size=3) as simulator:
        config = write_config(tmp_path, simulator.url, pm_api={"concurrency": "2"})
        phishme_intel.run(str(config))
        republished = dataset.republish(60)

        report = phishme_intel.run(str(config))

    assert report.delivered == len(set(republished))
    assert report.commits >= 20



class PositionWatcher(Adapter):
    """Notes each call it gets, with the position config.ini holds at that moment; fails its ``fail_at``-th commit."""

    name = "position_watcher"

    def __init__(self, config: Path, fail_at: int = 0) -> None:
        super().__init__({})
        self.checkpoint = ConfigCheckpoint(str(config))
        self.fail_at = fail_at
        self.calls: list[tuple[str, str | None]] = []

    def deliver(self, threats: Sequence[Threat]) -> None:
        self.calls.append(("deliver", self.checkpoint.load().position))

    def withdraw(self, refs: Sequence[ThreatRef]) -> None:
        self.calls.append(("withdraw", self.checkpoint.load().position))

    def commit(self) -> None:
        self.calls.append(("commit", self.checkpoint.load().position))
        if sum(call == "commit" for call, _ in self.calls) == self.fail_at:
            raise AdapterError(self.name, "cannot commit: fail_at")


class RecordingCheckpoint(ConfigCheckpoint):
    """config.ini's checkpoint, noting each position it stores, in turn."""

    def __init__(self, config_path: str) -> None:
        super().__init__(config_path)
        self.positions: list[str | None] = []

    def save(self, state: SyncState) -> None:
        super().save(state)
        self.positions.append(state.position)


def watched_updates_run(config: Path, watcher: PositionWatcher, checkpoint: ConfigCheckpoint | None = None) -> Report:
    """The updates run of ``config``'s adapters and ``watcher``."""
    loaded = load(str(config))
    client = ApiClient(loaded.api, loaded.proxy)
    try:
        stores = [adapter(settings) for adapter, settings in loaded.adapters.values()]
        return synchronize(client, [*stores, watcher], checkpoint or ConfigCheckpoint(loaded.path), loaded.api,
                           loaded.state)
    finally:
        client.close()


def test_no_position_is_stored_before_every_adapter_committed_the_page_it_stands_for(tmp_path, dataset):
    """The next page goes on to the adapters while a page's commit is made; its position waits for the commit."""
    with Simulator(dataset, user=USER, password=PASSWORD, updates_page_size=15) as simulator:
        config = write_config(tmp_path, simulator.url)
        phishme_intel.run(str(config))
        before = _state(config)["position"]
        dataset.republish(60)
        dataset.delete(12)
        watcher = PositionWatcher(config)
        checkpoint = RecordingCheckpoint(str(config))

        report = watched_updates_run(config, watcher, checkpoint)

    stored = [before, *checkpoint.positions]  # what config.ini held after each commit, in turn
    assert len(set(stored)) == len(stored) == report.commits + 1 >= 6
    assert stored[-1] == report.position == _state(config)["position"]
    committed, last_seen = 0, 0
    for call, position in watcher.calls:
        seen = stored.index(position)
        assert seen <= committed, f"{call}: the position of commit {seen} was stored before the watcher made it"
        assert seen >= last_seen, f"{call}: positions were stored out of order"
        committed += call == "commit"
        last_seen = seen
    assert committed == report.commits


def test_a_commit_that_fails_mid_updates_ends_the_run_with_its_error_and_nothing_after_it(tmp_path, dataset):
    with Simulator(dataset, user=USER, password=PASSWORD, updates_page_size=15) as simulator:
        config = write_config(tmp_path, simulator.url)
        phishme_intel.run(str(config))
        dataset.republish(60)
        watcher = PositionWatcher(config, fail_at=2)
        checkpoint = RecordingCheckpoint(str(config))

        with pytest.raises(AdapterError, match=r"position_watcher.*fail_at"):
            watched_updates_run(config, watcher, checkpoint)

    assert watcher.calls[-1][0] == "commit"  # the failed adapter was handed nothing after it
    assert [call for call, _ in watcher.calls].count("commit") == 2
    assert len(checkpoint.positions) == 1  # the first page's, none after the commit that failed
    assert _state(config)["position"] == checkpoint.positions[0]
