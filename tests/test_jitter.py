"""``[pm_jitter]``: one random offset per installation, stored once, never negative, waited before updates."""

from __future__ import annotations

import math
import random
import time

from hypothesis import given
from hypothesis import strategies as st
from support import write_config

import phishme_intel
from phishme_intel import config as config_module
from phishme_intel import schedule


class _Highest(random.Random):
    """A random source that always draws the largest value below 1."""

    def random(self):
        return math.nextafter(1.0, 0.0)


@given(st.integers(1, 24 * 60), st.randoms(use_true_random=False))
def test_the_offset_is_within_zero_and_the_execution_frequency(frequency, rng):
    offset = schedule.choose(frequency, rng)

    assert 0 <= offset < frequency


@given(st.integers(1, 24 * 60))
def test_even_the_highest_draw_stays_below_the_execution_frequency(frequency):
    assert schedule.choose(frequency, _Highest()) < frequency


def _offset(config):
    return config_module.load(str(config)).jitter.scheduler_offset


def test_an_offset_is_chosen_once_stored_with_comments_kept_and_reused(tmp_path, simulator):
    config = write_config(tmp_path, simulator.url, pm_jitter={"use": "True", "execution_frequency": "15"})
    text = config.read_text()
    config.write_text(text.replace("\n[pm_jitter]\n", "\n# the fleet's jitter\n[pm_jitter]\n"))
    phishme_intel.run(str(config))
    chosen = _offset(config)
    after_first = config.read_bytes()

    phishme_intel.run(str(config), jitter=False)

    assert chosen is not None and 0 <= chosen < 15
    assert "# the fleet's jitter\n[pm_jitter]" in config.read_text()
    assert config.read_bytes() == after_first
    assert f"jitter: chose scheduler_offset {chosen:g} min" in (tmp_path / "phishme_intel.log").read_text()


def test_a_negative_offset_left_by_the_vendor_library_is_replaced(tmp_path, simulator):
    config = write_config(tmp_path, simulator.url, pm_jitter={"use": "True", "scheduler_offset": "-1"})

    phishme_intel.run(str(config))

    assert 0 <= _offset(config) < 15
    assert "scheduler_offset -1 is not within [0, 15)" in (tmp_path / "phishme_intel.log").read_text()


def test_an_offset_no_longer_below_a_lowered_frequency_is_replaced(tmp_path, simulator):
    config = write_config(
        tmp_path, simulator.url, pm_jitter={"use": "True", "execution_frequency": "5", "scheduler_offset": "12"}
    )

    phishme_intel.run(str(config))

    assert 0 <= _offset(config) < 5


def test_without_use_nothing_is_chosen_or_stored(tmp_path, simulator):
    config = write_config(tmp_path, simulator.url, pm_jitter={"use": "False"})
    before = config.read_text()

    phishme_intel.run(str(config))

    assert _offset(config) is None
    assert [line for line in config.read_text().splitlines() if "scheduler_offset" in line] == [
        line for line in before.splitlines() if "scheduler_offset" in line
    ]


def test_an_updates_run_waits_the_offset_before_its_first_request(tmp_path, simulator):
    config = write_config(tmp_path, simulator.url, pm_jitter={"use": "True", "scheduler_offset": "0.03"})
    phishme_intel.run(str(config))
    requests_before = len(simulator.requests)

    started = time.monotonic()
    report = phishme_intel.run(str(config))

    assert report.mode == "updates"
    assert simulator.requests[requests_before].time - started >= 0.03 * 60
    assert "jitter: waiting 0.03 min" in (tmp_path / "phishme_intel.log").read_text()


def test_a_backfill_does_not_wait(tmp_path, simulator):
    config = write_config(tmp_path, simulator.url, pm_jitter={"use": "True", "scheduler_offset": "14"})

    started = time.monotonic()
    phishme_intel.run(str(config))

    assert simulator.requests[0].time - started < 60
    assert "jitter: waiting" not in (tmp_path / "phishme_intel.log").read_text()
