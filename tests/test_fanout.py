"""The fan-out's lanes: a lane still busy with a batch does not hold the next one back from the others."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from phishme_intel.adapters.base import Adapter
from phishme_intel.sync.fanout import Fanout

WAIT = 30.0  # seconds: only a failure waits this long


class _Recording(Adapter):
    """Notes each batch delivered; with ``hold`` set, its first delivery waits until ``hold`` is set free."""

    def __init__(self, name: str, hold: threading.Event | None = None) -> None:
        self.name = name
        super().__init__({})
        self.hold = hold
        self.batches: list[Any] = []
        self.got: dict[Any, threading.Event] = {}

    def expect(self, batch: Any) -> threading.Event:
        return self.got.setdefault(batch, threading.Event())

    def deliver(self, threats: Sequence[Any]) -> None:
        if self.hold is not None and not self.batches:
            assert self.hold.wait(WAIT), "the held delivery was never set free"
        self.batches.append(threats[0])
        self.expect(threats[0]).set()

    def withdraw(self, refs: Sequence[Any]) -> None:
        raise AssertionError("no withdrawal in this test")

    def commit(self) -> None:
        pass


def test_a_busy_lane_does_not_hold_the_next_batch_back_from_the_lanes_after_it() -> None:
    free = threading.Event()
    slow, quick = _Recording("slow", hold=free), _Recording("quick")
    fanout = Fanout([slow, quick])
    fanout.open()
    try:
        fanout.deliver(["first"])
        assert quick.expect("first").wait(WAIT)
        handing = threading.Thread(target=fanout.deliver, args=(["second"],))
        handing.start()  # waits for room on the slow lane, which is still on the first batch
        try:
            assert quick.expect("second").wait(WAIT), "the quick lane waited for the slow one"
            assert slow.batches == []
        finally:
            free.set()
            handing.join(WAIT)
        fanout.commit()
    finally:
        fanout.close()
    assert slow.batches == quick.batches == ["first", "second"]
