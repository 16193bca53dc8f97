"""What a run decides from config.ini, it decides under the lock; the jitter wait comes before it.

Two real CLI processes meet at the lock: the second is paused (a profile hook, see
``support.PAUSER``) just before it takes the lock, having read config.ini while no position
was stored; the first then runs its whole backfill and stores the position; the second goes
on. It must follow the updates feed from that position, not backfill a second time.
"""

from __future__ import annotations

from support import run_cli, start_paused_at, wait_until, write_config

WINDOW_SEARCH = "beginTimestamp"


def test_a_run_that_started_while_another_finished_its_backfill_does_not_backfill_again(tmp_path, simulator):
    config = write_config(tmp_path, simulator.url)
    ready, go = tmp_path / "ready", tmp_path / "go"
    second = start_paused_at(config, "phishme_intel.lock.hold", tmp_path)
    try:
        wait_until(ready.exists, "the second run to reach the lock")
        first = run_cli(config)
        assert first.returncode == 0, first.stderr
        assert "position = " in config.read_text() and "\nposition =\n" not in config.read_text()
        seen = len(simulator.requests)
        go.touch()
        _out, errors = second.communicate(timeout=120)
    finally:
        go.touch()
        second.wait(timeout=120)

    assert second.returncode == 0, errors
    later = simulator.requests[seen:]
    assert later, "the second run made no request"
    assert [r for r in later if WINDOW_SEARCH in r.params] == []
    log = (tmp_path / "phishme_intel.log").read_text()
    assert log.count("backfill from ") == 1
    assert "updates: following the feed from position" in log


def test_the_jitter_wait_does_not_hold_the_lock(tmp_path, simulator):
    config = write_config(tmp_path, simulator.url, pm_jitter={"use": "True", "scheduler_offset": "10"})
    assert run_cli(config).returncode == 0  # a backfill: no wait, and a position stored
    ready, go = tmp_path / "ready", tmp_path / "go"
    waiting = start_paused_at(config, "phishme_intel.interrupts.sleep", tmp_path)
    try:
        wait_until(ready.exists, "the run to start its jitter wait")
        other = run_cli(config, "--dry-run")
        locked = run_cli(config.parent / "config.ini", "--reset", "--yes")
    finally:
        waiting.terminate()
        go.touch()
        waiting.communicate(timeout=60)

    assert other.returncode == 0, other.stderr
    assert locked.returncode == 0, locked.stderr  # --reset takes the lock: nobody held it
