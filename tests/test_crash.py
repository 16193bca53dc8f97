"""Killed anywhere, it loses nothing: ``kill -9`` at random places and at the worst places.

Every test runs the real CLI as a subprocess against the simulator (served from this
process), kills it with SIGKILL, runs it again, and at the end compares the SQLite store
with what one clean run against the same simulator produces: the same threats with the
same JSON, the same indicator rows, no duplicate, and a tombstone for every threat deleted
meanwhile. After every kill config.ini must still load, with every comment and every line
but the three state lines exactly as they were.

The json_files adapter writes beside the store: its threat files must equal a clean run's,
and a consumer of its JSON Lines stream (keyed on the threat) must end up holding the same.

A kill happens at the Nth call of a library function (a SQLite write or commit, an fsync, a
rename), never after some time, so where it lands does not depend on the machine's speed. The
random places come from a seeded generator: ``PHISHME_CRASH_SEED=<n>`` replays a run (the same
kills at the same calls), ``PHISHME_CRASH_KILLS=<n>`` sets the number of kills (default 30);
``pytest -m slow`` runs the long variant (200 kills).

The PostgreSQL store gets the same random kills, fewer of them (at psycopg's executes and
commits too), compared with a clean run into a database of its own; the history of either
store must list exactly what its ``indicators`` table lists.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from postgres import Cluster
from support import (
    LISTED,
    LISTED_IN_HISTORY,
    PASSWORD,
    ROOT,
    USER,
    cli_command,
    contents,
    days_ago,
    run_cli,
    store,
    write_config,
)

from phishme_intel import config as config_module
from phishme_intel.simulator import Dataset, Simulator

SEED = int(os.environ.get("PHISHME_CRASH_SEED", "20261123"))
KILLS = int(os.environ.get("PHISHME_CRASH_KILLS", "30"))
POSTGRES_KILLS = 8  # the same code paths as SQLite's above: a few kills show the transaction holds
STATE_KEYS = ("position", "backfill_until", "backfill_done")

# Runs the CLI with the library functions below wrapped so that the process SIGKILLs itself at
# the Nth call of one of them (before the call starts or after it returned) made while a given
# function of ours is on the stack (``*``: anywhere): fault injection at the OS and library
# boundary, our own code untouched, nothing slowed down but those calls.
# KILL_AT is "<call>:<module.function on the stack or *>:<before|after>:<N>"; N = 0 never
# kills. A run that ends by itself writes to KILL_TALLY how many calls of each kind it made.
# ``execute`` and ``commit`` are SQLite's and psycopg's (the PostgreSQL store's).
CALLS = ("execute", "commit", "fsync", "replace")
KILLER = """
import json, os, signal, sqlite3, sys, threading
import psycopg

call, caller, moment, nth = os.environ["KILL_AT"].split(":")
tally, seen, lock = {"execute": 0, "commit": 0, "fsync": 0, "replace": 0}, [0], threading.Lock()


def called_from(frame):
    while frame is not None:
        if f"{frame.f_globals.get('__name__')}.{frame.f_code.co_name}" == caller:
            return True
        frame = frame.f_back
    return False


def reached(name, frame):
    with lock:
        tally[name] += 1
        if name == call and (caller == "*" or called_from(frame)):
            seen[0] += 1
            if seen[0] == int(nth):
                os.kill(os.getpid(), signal.SIGKILL)


def counted(name, function):
    def wrapper(*args, **kwargs):
        if moment == "before":
            reached(name, sys._getframe(1))
        result = function(*args, **kwargs)
        if moment == "after":
            reached(name, sys._getframe(1))
        return result
    return wrapper


class Connection(sqlite3.Connection):
    execute = counted("execute", sqlite3.Connection.execute)
    executemany = counted("execute", sqlite3.Connection.executemany)
    commit = counted("commit", sqlite3.Connection.commit)


connect = sqlite3.connect
sqlite3.connect = lambda *args, **kwargs: connect(*args, factory=Connection, **kwargs)
psycopg.Cursor.execute = counted("execute", psycopg.Cursor.execute)
psycopg.Cursor.executemany = counted("execute", psycopg.Cursor.executemany)
psycopg.Connection.commit = counted("commit", psycopg.Connection.commit)
os.fsync = counted("fsync", os.fsync)
os.replace = counted("replace", os.replace)
from phishme_intel.cli import main

code = main()
if "KILL_TALLY" in os.environ:
    with open(os.environ["KILL_TALLY"], "w") as file:
        json.dump(tally, file)
sys.exit(code)
"""


class Feed:
    """The simulator and its dataset, with every deletion made during the test remembered."""

    def __init__(self, simulator: Simulator, rng: random.Random) -> None:
        self.simulator = simulator
        self.dataset = simulator.dataset
        self.rng = rng
        self.deleted: set[tuple[str, int]] = set()

    def publish(self, republish: int, delete: int, malware: int, phish: int) -> None:
        """Re-publish, delete and add threats, as the vendor does between two runs."""
        self.dataset.republish(republish)
        self.deleted.update(self.dataset.delete(delete))
        self.dataset.add(malware=malware, phish=phish)

    def publish_some(self) -> None:
        """A random amount of change, drawn from the test's seeded generator."""
        rng = self.rng
        self.publish(rng.randint(0, 200), rng.randint(0, 30), rng.randint(0, 50), rng.randint(0, 10))


def crash_config(folder: Path, simulator: Simulator) -> Path:
    """A config where a backfill takes many requests and the updates feed many pages; SQLite and JSON files."""
    folder.mkdir(exist_ok=True)
    return write_config(
        folder, simulator.url,
        pm_api={"init_date": days_ago(31), "results_per_page": "50", "concurrency": "2"},
        integration_json_files={"use": "True", "layout": "flat", "jsonl_file": "threats.jsonl"},
    )


def without_state(text: str) -> list[str]:
    """The lines of a config.ini that a run must never change: all but the state keys."""
    return [line for line in text.splitlines() if line.partition("=")[0].strip() not in STATE_KEYS]


def assert_config_intact(config: Path, original: str) -> None:
    """config.ini loads, and every line but the state lines is as the user wrote it."""
    assert without_state(config.read_text()) == without_state(original)
    config_module.load(str(config))
    for leftover in config.parent.glob(f".{config.name}.*.tmp"):
        assert leftover.stat().st_mode & 0o077 == 0, f"{leftover} is readable by others"


def json_files(folder: Path) -> dict[str, bytes]:
    """The threat files the json_files adapter wrote, by path under its folder."""
    root = folder / "phishme_intel_json"
    return {str(file.relative_to(root)): file.read_bytes() for file in root.rglob("*.json")}


def json_lines_state(folder: Path) -> dict[tuple[str, int], object]:
    """What a consumer of the JSON Lines stream, keyed on (threat_type, threat_id), ends up holding."""
    held: dict[tuple[str, int], object] = {}
    for line in (folder / "threats.jsonl").read_text().splitlines():
        event = json.loads(line)
        key = (event["threat_type"], event["threat_id"])
        if event["action"] == "upsert":
            held[key] = event["threat"]
        else:
            held.pop(key, None)
    return held


def assert_same_as_one_clean_run(config: Path, feed: Feed, reference_folder: Path) -> None:
    """The products hold exactly what a clean run from scratch holds, plus a tombstone per deletion."""
    reference = run_cli(crash_config(reference_folder, feed.simulator))
    assert reference.returncode == 0, reference.stderr
    expected = contents(reference_folder / "phishme_intel.sqlite3")
    actual = contents(config.parent / "phishme_intel.sqlite3")
    assert {(kind, tid) for kind, tid, *_ in actual["threats"]} == feed.dataset.live_ids()
    assert actual["threats"] == expected["threats"]
    assert actual["indicators"] == expected["indicators"]
    assert actual["listed_in_history"] == actual["listed"]
    assert set(actual["deleted"]) == feed.deleted
    assert store(config.parent / "phishme_intel.sqlite3")["duplicate_indicators"] == 0
    assert json_files(config.parent) == json_files(reference_folder)
    assert json_lines_state(config.parent) == json_lines_state(reference_folder)


def run_killed_at(config: Path, place: str, tally: Path | None = None) -> int:
    """The CLI's command line run through KILLER; its exit status (-9 when the kill point was reached)."""
    python, _script, *arguments = cli_command(config)
    env = {**os.environ, "KILL_AT": place, **({"KILL_TALLY": str(tally)} if tally else {})}
    result = subprocess.run(
        [python, "-c", KILLER, *arguments], capture_output=True, text=True, timeout=600, cwd=ROOT, env=env,
    )
    assert result.returncode in (0, -9), result.stderr
    return result.returncode


@pytest.fixture
def crash_simulator() -> Iterator[Simulator]:
    """2,000 malware and 500 phish threats over 30 days; changelog pages of 100 entries; 10 ms a request."""
    dataset = Dataset(seed=SEED % 1000, malware=2000, phish=500, days=30)
    with Simulator(dataset, user=USER, password=PASSWORD, latency=0.01, updates_page_size=100) as simulator:
        yield simulator


def kill_at_random_places(
    tmp_path: Path, simulator: Simulator, kills: int, seed: int,
    configure: Callable[[Path, Simulator], Path] = crash_config,
    same_as_clean: Callable[[Path, Feed, Path], None] = assert_same_as_one_clean_run,
) -> None:
    """Kill runs at random places, then check the products with ``same_as_clean`` (configs by ``configure``)."""
    print(f"PHISHME_CRASH_SEED={seed} PHISHME_CRASH_KILLS={kills} replays this test")  # shown when it fails
    rng = random.Random(seed)
    feed = Feed(simulator, rng)
    config = configure(tmp_path / "crashed", simulator)
    original = config.read_text()
    tally_file = tmp_path / "tally.json"
    tally = dict.fromkeys(CALLS, 20)  # until a run has counted them: early in the first backfill
    runs, killed = 0, 0
    while killed < kills:
        runs += 1
        call = rng.choice(CALLS)
        # every fourth run may finish: a backfill commits only at its end
        nth = 0 if runs % 4 == 0 else rng.randint(1, max(1, tally[call]))
        place = f"{call}:*:{rng.choice(('before', 'after'))}:{nth}"
        if run_killed_at(config, place, tally_file) == -9:
            killed += 1
        else:
            tally = json.loads(tally_file.read_text())
        assert_config_intact(config, original)
        feed.publish_some()
    final = run_cli(config)
    assert final.returncode == 0, final.stderr
    assert_config_intact(config, original)
    same_as_clean(config, feed, tmp_path / "reference")


@pytest.mark.timeout(900)  # a hang guard: about 5 minutes on a busy 2-core machine
def test_killed_at_random_places_then_rerun_it_ends_as_one_clean_run(tmp_path, crash_simulator):
    kill_at_random_places(tmp_path, crash_simulator, KILLS, SEED)


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_killed_at_random_places_many_times_it_ends_as_one_clean_run(tmp_path, crash_simulator):
    kill_at_random_places(tmp_path, crash_simulator, max(KILLS, 200), SEED)


@pytest.mark.parametrize(
    "place",
    [
        pytest.param("commit:phishme_intel.adapters.sqlite.commit:after", id="after-the-store-commits"),
        pytest.param("fsync:phishme_intel.adapters.json_files.commit:after", id="after-the-json-files-commit"),
        pytest.param("fsync:phishme_intel.state.save:before", id="config-rewrite-before-it-is-durable"),
        pytest.param("replace:phishme_intel.state.save:before", id="config-rewrite-before-the-rename"),
        pytest.param("replace:phishme_intel.state.save:after", id="config-rewrite-after-the-rename"),
    ],
)
def test_killed_at_each_worst_place_in_turn_it_ends_as_one_clean_run(tmp_path, place):
    dataset = Dataset(seed=5, malware=300, phish=60, days=20)
    with Simulator(dataset, user=USER, password=PASSWORD, updates_page_size=20) as simulator:
        feed = Feed(simulator, random.Random(SEED))
        config = crash_config(tmp_path / "crashed", simulator)
        original = config.read_text()
        for phase in ("backfill", "updates"):
            if phase == "updates":
                feed.publish(republish=40, delete=15, malware=20, phish=5)
            kills = 0
            # the Nth run dies at the Nth time it reaches the place, until a run reaches it fewer times
            while run_killed_at(config, f"{place}:{kills + 1}") == -9:
                kills += 1
                assert_config_intact(config, original)
                assert kills < 50, "the run never got past the kill point"
            assert kills >= 1, f"{phase}: the run never reached {place}"
            assert_config_intact(config, original)
        assert_same_as_one_clean_run(config, feed, tmp_path / "reference")


class PostgresStore:
    """The crash test with the PostgreSQL store in place of SQLite and JSON files; a database per folder."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster

    def configure(self, folder: Path, simulator: Simulator) -> Path:
        folder.mkdir(exist_ok=True)
        conninfo = self.cluster.conninfo(self.cluster.database())
        store = {"use": "True", "conninfo": conninfo, "pass": self.cluster.password}
        return write_config(
            folder, simulator.url,
            pm_api={"init_date": days_ago(31), "results_per_page": "50", "concurrency": "2"},
            integration_sqlite={"use": "False"}, integration_postgresql=store,
        )

    def contents(self, config: Path) -> dict[str, list[tuple[object, ...]]]:
        section = config_module.read(str(config))["integration_postgresql"]
        with psycopg.connect(section["conninfo"], password=section["pass"]) as db:
            return {
                "threats": db.execute("SELECT * FROM threats ORDER BY threat_type, threat_id").fetchall(),
                "indicators": db.execute("SELECT * FROM indicators ORDER BY 1, 2, 3, 4").fetchall(),
                "deleted": db.execute("SELECT threat_type, threat_id FROM deleted_threats").fetchall(),
                "listed": db.execute(LISTED).fetchall(),
                "listed_in_history": db.execute(LISTED_IN_HISTORY).fetchall(),
            }

    def assert_same_as_one_clean_run(self, config: Path, feed: Feed, reference_folder: Path) -> None:
        reference = run_cli(self.configure(reference_folder, feed.simulator))
        assert reference.returncode == 0, reference.stderr
        actual, expected = self.contents(config), self.contents(reference_folder / "config.ini")
        assert {(kind, tid) for kind, tid, *_ in actual["threats"]} == feed.dataset.live_ids()
        assert actual["threats"] == expected["threats"]
        assert actual["indicators"] == expected["indicators"]
        assert actual["listed_in_history"] == actual["listed"]
        assert set(actual["deleted"]) == feed.deleted


@pytest.mark.timeout(900)
def test_killed_at_random_places_with_the_postgresql_store_it_ends_as_one_clean_run(
    tmp_path, crash_simulator, postgres
):
    store = PostgresStore(postgres)
    kill_at_random_places(
        tmp_path, crash_simulator, POSTGRES_KILLS, SEED, store.configure, store.assert_same_as_one_clean_run
    )
