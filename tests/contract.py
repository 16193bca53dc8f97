"""The contract every adapter keeps, as tests (after vdirsyncer's StorageTests).

A test module for an adapter subclasses :class:`AdapterContract` and provides three
fixtures: ``make_adapter`` (a callable returning a new adapter on the real destination,
each call on the *same* destination), ``held`` (a callable returning the set of
ThreatRefs the destination holds now, as its consumer would see it: for an event stream,
upserts not followed by a removal event) and ``broken_adapter`` (an adapter whose
destination cannot be used: unwritable, refused, full).
"""

from __future__ import annotations

import pytest
from support import sample_threats

from phishme_intel.errors import AdapterError
from phishme_intel.models import MALWARE, PHISH, ThreatRef


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

    def test_committed_data_survives_a_new_adapter(self, make_adapter, held):
        threats = sample_threats()
        deliver(make_adapter(), threats)
        reopened = make_adapter()
        reopened.open()
        reopened.close()
        assert held() == {t.ref for t in threats}

    def test_unusable_destination_is_a_clear_adapter_error(self, broken_adapter):
        with pytest.raises(AdapterError) as failure:
            deliver(broken_adapter, sample_threats())
        assert failure.value.adapter == broken_adapter.name
        assert broken_adapter.name in str(failure.value)
