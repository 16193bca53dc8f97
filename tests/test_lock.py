"""One run at a time: a second process exits 75 at once; a killed holder blocks nobody."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest
from support import run_cli

HOLDER = """
import sys, time
from phishme_intel.lock import hold
with hold(sys.argv[1]):
    print("held", flush=True)
    time.sleep(120)
"""


@pytest.fixture
def holder(config):
    """Another process holding the config's lock file."""
    process = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(config.parent / "phishme_intel.lock")], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout.readline() == "held\n"
    yield process
    process.kill()
    process.wait()


def test_a_second_run_exits_75_at_once_and_does_nothing(config, simulator, holder):
    before = config.read_bytes()

    result = run_cli(config)  # the holder never lets go: a run that waited for the lock would time out

    assert result.returncode == 75
    assert simulator.requests == []
    assert config.read_bytes() == before
    assert not (config.parent / "phishme_intel.sqlite3").exists()
    log = (config.parent / "phishme_intel.log").read_text()
    assert "another run holds the lock" in log


def test_a_holder_killed_with_sigkill_does_not_block_the_next_run(config, holder):
    holder.send_signal(signal.SIGKILL)
    holder.wait()

    result = run_cli(config)

    assert result.returncode == 0, result.stderr
    assert (config.parent / "phishme_intel.lock").exists()
