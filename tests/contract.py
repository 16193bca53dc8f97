"""The contract every adapter keeps, as tests (after vdirsyncer's StorageTests).

A test module for an adapter subclasses :class:`AdapterContract` and provides three
fixtures: ``make_adapter`` (a callable returning a new adapter on the real destination,
each call on the *same* destination), ``held`` (a callable returning the set of
ThreatRefs the destination holds now, read as its consumer reads it, never through the
adapter: for an event stream, upserts not followed by a removal event) and
``broken_adapter`` (an adapter whose destination cannot be used: unwritable, refused, full).

What every adapter must do: hold what it was given, replays and withdrawals included; keep
what it committed once its commit returned, even if its process then dies without closing
it, so that a new adapter carries on from there; and end up, when a run that never
committed is replayed, as if that run had committed once. Work that was never committed
may reach the product or not (an event already sent stays sent): an adapter whose
docstring promises that nothing reaches the product before its commit also passes
:class:`DiscardsUncommitted`.
"""

from __future__ import annotations

import pickle
import subprocess
import sys

import pytest
from support import sample_threats

from phishme_intel.errors import AdapterError
from phishme_intel.models import MALWARE, PHISH, ThreatRef
from phishme_intel.sync.fanout import Fanout


def deliver(adapter, threats=(), withdrawn=(), commit=True):
    """One run's worth of work for ``adapter``: open, deliver, withdraw, commit, close."""
    adapter.open()
    try:
        adapter.deliver(list(threats))
        adapter.withdraw(list(withdrawn))
        if commit:
            adapter.commit()
    finally:
        adapter.close()


_COMMIT_AND_DIE = """
import os, pickle, sys
from phishme_intel.sync.fanout import Fanout
made, threats = pickle.load(sys.stdin.buffer)
adapter = Fanout([cls(settings) for cls, settings in made])
adapter.open()
adapter.deliver(threats)
adapter.commit()
os._exit(0)
"""


def commit_then_die(adapter, threats) -> None:
    """Deliver and commit ``threats`` with a copy of ``adapter`` (or of a Fanout's adapters) in a new process.

    The process exits right after the commit, without closing the adapter.
    """
    made = [(type(part), part.settings) for part in (adapter.adapters if isinstance(adapter, Fanout) else [adapter])]
    result = subprocess.run(
        [sys.executable, "-c", _COMMIT_AND_DIE], input=pickle.dumps((made, list(threats))),
        capture_output=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr.decode()


class AdapterContract:
    """Subclass with the fixtures ``make_adapter``, ``held`` and ``broken_adapter``."""

    def test_delivered_threats_of_both_kinds_are_held(self, make_adapter, held):
        threats = sample_threats()
        deliver(make_adapter(), threats)
        assert held() == {t.ref for t in threats}
        assert {ref.kind for ref in held()} == {MALWARE, PHISH}

    def test_replayed_delivery_changes_nothing(self, make_adapter, held):
        threats = sample_threats()
        deliver(make_adapter(), threats)
        first = held()
        deliver(make_adapter(), threats)
        deliver(make_adapter(), threats[:3])
        assert held() == first

    def test_withdrawal_removes_the_threat(self, make_adapter, held):
        threats = sample_threats()
        gone = [threats[0].ref, threats[-1].ref]
        deliver(make_adapter(), threats)
        deliver(make_adapter(), [], withdrawn=gone)
        assert held() == {t.ref for t in threats} - set(gone)

    def test_replayed_withdrawal_changes_nothing(self, make_adapter, held):
        threats = sample_threats()
        deliver(make_adapter(), threats, withdrawn=[threats[0].ref])
        after = held()
        deliver(make_adapter(), threats, withdrawn=[threats[0].ref])
        assert held() == after == {t.ref for t in threats[1:]}

    def test_withdrawing_a_threat_never_delivered_is_not_an_error(self, make_adapter, held):
        deliver(make_adapter(), [], withdrawn=[ThreatRef(MALWARE, 999_999_999)])
        assert held() == set()

    def test_committed_data_survives_its_process_and_a_new_adapter_carries_on_from_it(self, make_adapter, held):
        threats = sample_threats()
        commit_then_die(make_adapter(), threats)
        assert held() == {t.ref for t in threats}
        deliver(make_adapter(), [], withdrawn=[threats[0].ref])
        assert held() == {t.ref for t in threats[1:]}

    def test_a_replay_makes_good_a_run_that_never_committed(self, make_adapter, held):
        threats = sample_threats()
        first, later = threats[:5], threats[5:]
        deliver(make_adapter(), first)
        deliver(make_adapter(), later, withdrawn=[first[0].ref], commit=False)
        deliver(make_adapter(), later, withdrawn=[first[0].ref])
        assert held() == {t.ref for t in threats[1:]}

    def test_unusable_destination_is_a_clear_adapter_error(self, broken_adapter):
        with pytest.raises(AdapterError) as failure:
            deliver(broken_adapter, sample_threats())
        assert failure.value.adapter == broken_adapter.name
        assert broken_adapter.name in str(failure.value)


class DiscardsUncommitted:
    """For an adapter whose docstring promises that nothing reaches the product before its commit.

    Needs the fixtures ``make_adapter`` and ``held`` of :class:`AdapterContract`.
    """

    def test_uncommitted_work_is_discarded(self, make_adapter, held):
        threats = sample_threats()
        kept, dropped = threats[:5], threats[5:]
        deliver(make_adapter(), kept)
        deliver(make_adapter(), dropped, withdrawn=[kept[0].ref], commit=False)
        deliver(make_adapter())
        assert held() == {t.ref for t in kept}
