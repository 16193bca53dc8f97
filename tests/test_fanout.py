"""The fan-out's lanes: a lane busy with a batch or a commit holds the next batch back from no other lane."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from phishme_intel.adapters.base import Adapter
from phishme_intel.sync.fanout import Fanout

WAIT = 30.0  # seconds: only a failure waits this long


class _Recording(Adapter):
    """Notes each batch delivered and how many it had at each commit.

    With ``hold`` set, its first delivery waits until ``hold`` is set free; with ``commit_hold``, its first commit.
    """

    def __init__(self, name: str, hold: threading.Event | None = None,
                 commit_hold: threading.Event | None = None) -> None:
        self.name = name
        super().__init__({})
        self.hold, self.commit_hold = hold, commit_hold
        self.batches: list[Any] = []
        self.commits: list[int] = []
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
        if self.commit_hold is not None and not self.commits:
            assert self.commit_hold.wait(WAIT), "the held commit was never set free"
        self.commits.append(len(self.batches))


@contextmanager
def opened(fanout: Fanout) -> Iterator[Fanout]:
    """``fanout`` opened for the block, closed after it (its lanes ended) however the block ends."""
    fanout.open()
    try:
        yield fanout
    finally:
        fanout.close()


def test_a_busy_lane_does_not_hold_the_next_batch_back_from_the_lanes_after_it() -> None:
    free = threading.Event()
    slow, quick = _Recording("slow", hold=free), _Recording("quick")
    with opened(Fanout([slow, quick])) as fanout:
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
    assert slow.batches == quick.batches == ["first", "second"]


def test_a_commit_in_flight_holds_no_batch_back_and_takes_only_what_was_handed_before_it() -> None:
    free = threading.Event()
    slow, quick = _Recording("slow", commit_hold=free), _Recording("quick")
    with opened(Fanout([slow, quick])) as fanout:
        fanout.deliver(["first"])
        commit = fanout.queue_commit()  # returns at once: the slow adapter's commit is still to come
        fanout.deliver(["second"])
        assert quick.expect("second").wait(WAIT), "a delivery waited for a commit in flight"
        assert quick.commits == [1] and slow.commits == []
        free.set()
        commit.wait()
        assert slow.commits == [1]
        fanout.commit()
    assert slow.batches == quick.batches == ["first", "second"]
    assert slow.commits == quick.commits == [1, 2]
