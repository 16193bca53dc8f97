"""The API misbehaves: every fault ends in a correct sync, or in a non-zero exit that advanced nothing.

Each test starts from a store and config.ini that a clean run synced, and a simulator of its
own serving the same threats (so no test sees another's changes), lets the vendor publish
changes, injects one of the simulator's faults and runs the real CLI. A fault that stops
before the retries run out must end in a correct sync; one that outlasts them must end with
exit 69, one line on stderr, config.ini byte for byte as it was and the store untouched, and
the next run must then complete the sync. The simulator's request log shows that retries are
bounded and back off: only lower bounds on waits (a busy machine only lengthens them) and
counts, never an upper bound on a time. Every run logs at ``log_level = debug``, and every log line, stdout and
stderr is searched for the API password.
"""

from __future__ import annotations

import base64
import itertools
import re
import shutil
import sqlite3
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from support import PASSWORD, USER, run_cli, set_api_options, store, write_config

from phishme_intel.simulator import Dataset, RequestRecord, Simulator

MAX_RETRIES = 3
BACKOFF = 0.05
TIMEOUT = 30.0  # no answer of a busy machine is that slow: a retry is always the fault's doing
STALL_TIMEOUT = 1.0  # the timeout of the stall tests, whose stalls last until the simulator stops
STALL = 600.0
PAGE = 50
DATASET = {"seed": 31, "malware": 150, "phish": 40, "days": 10}
SECRETS = (PASSWORD, quote(PASSWORD, safe=""), base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode())


class Feed:
    """The simulator, a folder a clean run synced from it, and every deletion made since."""

    def __init__(self, simulator: Simulator, synced: Path) -> None:
        self.simulator = simulator
        self.dataset = simulator.dataset
        self.synced = synced
        self.deleted: set[tuple[str, int]] = set()

    def publish(self, republish: int = 30, delete: int = 8) -> None:
        self.dataset.republish(republish)
        self.deleted.update(self.dataset.delete(delete))
        self.dataset.add(malware=10, phish=3)


@pytest.fixture(scope="module")
def synced(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder one clean run synced from a simulator serving ``DATASET``."""
    with Simulator(Dataset(**DATASET), user=USER, password=PASSWORD, updates_page_size=PAGE) as simulator:
        folder = tmp_path_factory.mktemp("synced")
        config = write_config(
            folder, simulator.url,
            pm_api={"max_retries": str(MAX_RETRIES), "retry_backoff": str(BACKOFF), "timeout": str(TIMEOUT),
                    "concurrency": "1"},
            local_log={"log_level": "debug"},
        )
        first = run_cli(config)
        assert first.returncode == 0, first.stderr
        (folder / "phishme_intel.log").unlink()
    return folder


@pytest.fixture
def feed(synced: Path) -> Iterator[Feed]:
    """A new simulator serving ``DATASET`` as the synced folder last saw it (a dataset's changelog
    positions follow from its parameters), with the same changes published in every test."""
    with Simulator(Dataset(**DATASET), user=USER, password=PASSWORD, updates_page_size=PAGE) as simulator:
        feed = Feed(simulator, synced)
        feed.publish()
        yield feed


@pytest.fixture
def config(feed: Feed, tmp_path: Path) -> Iterator[Path]:
    """A copy of the synced folder pointing at ``feed``'s simulator; no request seen yet.

    Every fault a test queues must have been used up by the end of the test.
    """
    for name in ("config.ini", "phishme_intel.sqlite3"):
        shutil.copy2(feed.synced / name, tmp_path / name)
    set_api_options(tmp_path / "config.ini", base_url=feed.simulator.url)
    yield tmp_path / "config.ini"
    assert len(feed.simulator.faults) == 0, "a queued fault was never reached"


def sync(config: Path) -> tuple[int, str]:
    """Run the CLI; returns its exit code and stderr, after checking no secret got out."""
    result = run_cli(config)
    log = (config.parent / "phishme_intel.log").read_text()
    assert "DEBUG" in log
    for secret in SECRETS:
        assert secret not in log + result.stdout + result.stderr
    return result.returncode, result.stderr


def rows(config: Path) -> dict[str, list[tuple[object, ...]]]:
    with sqlite3.connect(config.parent / "phishme_intel.sqlite3") as db:
        return {
            table: db.execute(f"SELECT * FROM {table} ORDER BY 1, 2, 3").fetchall()
            for table in ("threats", "indicators", "deleted_threats")
        }


def assert_synced(config: Path, feed: Feed) -> None:
    """The store holds every live threat, a tombstone per deletion, and config the newest position."""
    held = store(config.parent / "phishme_intel.sqlite3")
    assert held["threats"] == feed.dataset.live_ids()
    assert held["deleted"] == feed.deleted
    assert held["duplicate_indicators"] == 0
    assert f"position = {feed.dataset.updates_end()}\n" in config.read_text()


def attempts(records: list[RequestRecord], path: str) -> list[list[float]]:
    """The arrival times of each distinct request (same path and parameters) to ``path``, in order."""
    by_request: dict[str, list[float]] = defaultdict(list)
    for record in records:
        if record.path == path:
            by_request[repr(sorted(record.params.items()))].append(record.time)
    return list(by_request.values())


UPDATES, SEARCH = "/threat/updates", "/threat/search"
# Each kind on one of the two paths: the changelog is read by the plan, threats by id on the workers.
# Answers that are not JSON or say no success are on UPDATES: a search answer is decoded by the
# thread that delivers it, after the workers fetched ahead, so consecutive faults land on
# different requests (tests/test_fetch_then_decode.py covers those).
TRANSIENT = [
    ("429", UPDATES), ("500", SEARCH), ("502", UPDATES), ("503", SEARCH), ("outage", UPDATES),
    ("reset", SEARCH), ("truncate", UPDATES), ("invalid_json", UPDATES), ("success_false", UPDATES),
    ("429", SEARCH), ("reset", UPDATES), ("truncate", SEARCH),
]


@pytest.mark.parametrize(("kind", "path"), TRANSIENT)
def test_a_fault_that_passes_within_the_retries_ends_in_a_correct_sync(config, feed, kind, path):
    feed.simulator.faults.add(kind, times=MAX_RETRIES, path=path)

    code, stderr = sync(config)

    assert code == 0, stderr
    assert_synced(config, feed)
    tried = attempts(feed.simulator.requests, path)
    assert sum(len(times) - 1 for times in tried) == MAX_RETRIES  # each failed attempt was tried again once
    assert all(len(times) <= MAX_RETRIES + 1 for times in tried)
    assert (config.parent / "phishme_intel.log").read_text().count("; retry ") == MAX_RETRIES


def test_a_stall_longer_than_the_timeout_is_abandoned_and_retried(config, feed):
    set_api_options(config, timeout=str(STALL_TIMEOUT))
    feed.simulator.faults.add("stall", times=1, path=UPDATES, seconds=STALL)

    code, stderr = sync(config)

    assert code == 0, stderr  # the stalled answer never came: the run gave up on it
    assert_synced(config, feed)
    first = attempts(feed.simulator.requests, UPDATES)[0]
    assert len(first) == 2
    assert first[1] - first[0] >= STALL_TIMEOUT
    assert "failed (timed out); retry 1 of 3" in (config.parent / "phishme_intel.log").read_text()


PERSISTENT = [
    ("429", SEARCH, "HTTP 429 rate limited"),
    ("500", UPDATES, "HTTP 500"),
    ("502", SEARCH, "HTTP 502"),
    ("503", UPDATES, "HTTP 503"),
    ("outage", SEARCH, "HTTP 503"),
    ("reset", UPDATES, "connection reset by peer"),
    ("truncate", SEARCH, "the answer was cut short"),
    ("stall", UPDATES, "timed out"),
    ("invalid_json", UPDATES, "the answer is not valid JSON"),
    ("success_false", UPDATES, "the answer does not say success"),
]


@pytest.mark.parametrize(("kind", "path", "reason"), PERSISTENT)
def test_a_fault_that_outlasts_the_retries_exits_69_having_advanced_nothing(config, feed, kind, path, reason):
    if kind == "stall":
        set_api_options(config, timeout=str(STALL_TIMEOUT))
    before, held = config.read_bytes(), rows(config)
    seconds = STALL if kind == "stall" else None
    feed.simulator.faults.add(kind, times=1000, path=path, seconds=seconds)  # every request to path fails

    code, stderr = sync(config)

    assert code == 69
    assert stderr.startswith("phishme-intel: ") and stderr.count("\n") == 1
    assert f"failed {MAX_RETRIES + 1} times, last: {reason}" in stderr
    assert "Traceback" not in stderr
    assert config.read_bytes() == before
    assert rows(config) == held
    tried = attempts(feed.simulator.requests, path)
    assert max(len(times) for times in tried) == MAX_RETRIES + 1
    assert all(len(times) <= MAX_RETRIES + 1 for times in tried)

    feed.simulator.faults.clear()
    code, stderr = sync(config)
    assert code == 0, stderr
    assert_synced(config, feed)


def test_retries_back_off_exponentially_with_jitter(config, feed):
    feed.simulator.faults.add("503", times=MAX_RETRIES, path=UPDATES)

    code, stderr = sync(config)

    assert code == 0, stderr
    first = attempts(feed.simulator.requests, UPDATES)[0]
    gaps = [later - earlier for earlier, later in itertools.pairwise(first)]
    assert len(gaps) == MAX_RETRIES
    # retry k waits at least half of BACKOFF * 2**k (the other half is jitter)
    assert [gap >= BACKOFF * 2**retry / 2 for retry, gap in enumerate(gaps)] == [True] * MAX_RETRIES, gaps


def test_retry_after_is_honoured_before_the_next_attempt(config, feed):
    feed.simulator.faults.add("429", times=2, path=UPDATES, retry_after=1)

    code, stderr = sync(config)

    assert code == 0, stderr
    first = attempts(feed.simulator.requests, UPDATES)[0]
    assert len(first) == 3
    assert all(later - earlier >= 1.0 for earlier, later in itertools.pairwise(first))
    log = (config.parent / "phishme_intel.log").read_text()
    assert re.findall(r"retry \d of 3 in ([\d.]+) s", log) == ["1.0", "1.0"]  # not the back-off


def test_a_429_with_retry_after_is_waited_out_then_the_sync_completes(config, feed):
    set_api_options(config, concurrency="4")
    feed.publish(republish=400)
    feed.simulator.faults.add("429", times=1, path=SEARCH, retry_after=1)

    code, stderr = sync(config)

    assert code == 0, stderr
    assert_synced(config, feed)
    # the request told to come back in a second came back no sooner (that a 429 holds back the
    # other workers too is shown at the client in test_politeness.py)
    records = feed.simulator.requests
    limited = next(record for record in records if record.status == 429)
    again = next(r for r in records if r.time > limited.time and (r.path, r.params) == (limited.path, limited.params))
    assert again.time - limited.time >= 1.0


def test_a_fault_midway_keeps_the_committed_pages_and_the_next_run_completes(config, feed):
    feed.publish(republish=150)
    start = next(line for line in config.read_text().splitlines() if line.startswith("position = "))[11:]
    after_first_page = feed.dataset.updates_after(start, PAGE)[1]
    # the first changelog page is answered, the next one fails every attempt
    feed.simulator.faults.add("503", times=MAX_RETRIES + 1, path=UPDATES, after=1)

    code, stderr = sync(config)

    assert code == 69
    assert f"position = {after_first_page}\n" in config.read_text()
    code, stderr = sync(config)
    assert code == 0, stderr
    assert_synced(config, feed)


def test_an_unknown_position_exits_65_says_how_to_recover_and_changes_nothing(config, feed):
    set_api_options(config, position="0b3c0c7e-8a4c-4a47-9c66-0d5e62d3a2b1")
    before, held = config.read_bytes(), rows(config)

    code, stderr = sync(config)

    assert code == 65
    assert "empty [pm_api] position" in stderr and "Traceback" not in stderr
    assert config.read_bytes() == before
    assert rows(config) == held
    assert [r.path for r in feed.simulator.requests] == [UPDATES]


def test_emptying_an_unknown_position_as_advised_backfills_again_and_recovers(config, feed):
    set_api_options(config, position="0b3c0c7e-8a4c-4a47-9c66-0d5e62d3a2b1")
    assert sync(config)[0] == 65

    set_api_options(config, position="")
    code, stderr = sync(config)

    assert code == 0, stderr
    held = store(config.parent / "phishme_intel.sqlite3")
    assert held["threats"] >= feed.dataset.live_ids()
    assert held["duplicate_indicators"] == 0
    assert f"position = {feed.dataset.updates_end()}\n" in config.read_text()
