"""The enabled adapters seen as one destination, each adapter working on a thread of its own.

lane
    One adapter's thread and its queue of work. Everything the adapter does runs on its lane,
    from :meth:`~phishme_intel.adapters.base.Adapter.open` to
    :meth:`~phishme_intel.adapters.base.Adapter.close`, in the order it was handed over; so a
    connection an adapter opens stays on the thread that made it. A lane holds at most
    :attr:`Fanout.depth` batches, the one it works on included: the sync decodes the next page
    while the adapters still write the last one (SQLite's writes, file and socket writes let
    go of the interpreter's lock, so they run beside the decoding on the machine's other core),
    but it gets no further ahead than that, so memory stays flat.

The engine hands every batch to :class:`Fanout`, which queues it on every lane and returns;
the lanes with room get it first, so one still busy with the last batch holds back none after it.
:meth:`Fanout.queue_commit` queues a commit on every lane too, behind what it was handed, and
returns at once: each adapter commits when its lane gets there (one built from the store
once the stores did), while the sync goes on handing the next batches over behind it, and
the :class:`Commit` it returns says when every adapter made it, so the engine stores its
position only then (:meth:`Fanout.commit` waits for that). An adapter built from the store
(:attr:`~phishme_intel.adapters.base.Adapter.reads_store`) gets, before it opens, a reader of
the first store of its own (opened on its lane), and so sees each commit of the store once it
is made. Adapters open one after another, stores first, each once the one before it is open.

An adapter that fails raises, on its lane, an AdapterError naming it (anything else it
raises, a bug or an OSError it did not expect, becomes one); the lane then skips the rest of
its work but its close. The error is raised to the engine by the next ``deliver``,
``withdraw`` or commit, and by the :class:`Commit` it was part of, so the run fails cleanly
and the position stays where it was.
:meth:`Fanout.close` lets every lane finish what it was handed, closes every adapter that
opened, and waits for the lanes to end. Lanes block SIGINT and SIGTERM, as the fetch workers
do: the main thread hears them and stops at its next safe point.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any

from .. import interrupts
from ..adapters.base import Adapter
from ..adapters.store import StoreReader
from ..errors import AdapterError, Interrupted
from ..models import Threat, ThreatRef

log = logging.getLogger(__name__)


class Fanout:
    """Fans deliveries, withdrawals and commits out to every adapter, each on its own lane."""

    #: How many batches a lane holds (the one it works on included) before the sync waits for it.
    depth = 1

    def __init__(self, adapters: Sequence[Adapter]) -> None:
        self.adapters = sorted(adapters, key=lambda adapter: not adapter.keeps_store)
        self._lanes: list[_Lane] = []

    def open(self) -> None:
        """Start the lanes and open every adapter on its own, in turn; a reader of the store gets its reader first."""
        self._lanes = [_Lane(adapter, self.depth) for adapter in self.adapters]
        store = next((adapter for adapter in self.adapters if adapter.keeps_store), None)
        for lane in self._lanes:
            if lane.adapter.reads_store:
                if store is None:
                    raise AdapterError(lane.adapter.name, "is built from the IOC store, "
                                                          "but no store adapter is enabled")
                lane.ask(lane.take_reader, store).result()
            lane.ask(lane.open).result()

    def deliver(self, threats: Sequence[Threat]) -> None:
        if threats:
            self._hand("deliver", threats)

    def withdraw(self, refs: Sequence[ThreatRef]) -> None:
        if refs:
            self._hand("withdraw", refs)

    def commit(self) -> None:
        """Commit everything handed over so far; returns once every adapter did (see :meth:`queue_commit`)."""
        self.queue_commit().wait()

    def queue_commit(self) -> Commit:
        """Queue on every lane, behind what it was handed, the commit of it; returns at once.

        What is handed over after it goes behind it on every lane, into the next commit. A
        store commits when its lane gets there; an adapter built from the store commits once
        the stores did, so it sees their commit; the others commit when their lanes get there.
        """
        self._raise_failure()
        stores = [lane.ask(lane.work, "commit") for lane in self._lanes if lane.adapter.keeps_store]
        others = [lane.ask(lane.commit_after, stores) if lane.adapter.reads_store else lane.ask(lane.work, "commit")
                  for lane in self._lanes if not lane.adapter.keeps_store]
        return Commit([*stores, *others])

    def close(self) -> None:
        """Let every lane finish, close what opened (on its lane), end the lanes; never raises."""
        for lane in self._lanes:
            lane.end()
        for lane in self._lanes:
            lane.join()
        self._lanes = []

    def _hand(self, action: str, batch: Sequence[Any]) -> None:
        """Queue the batch on every lane: first on those with room, then (waiting) on the others."""
        self._raise_failure()
        for lane in [lane for lane in self._lanes if not lane.post(action, batch, wait=False)]:
            lane.post(action, batch)

    def _raise_failure(self) -> None:
        """Raise the error of the first adapter (in order) that failed, if one did."""
        for lane in self._lanes:
            if lane.failure is not None:
                raise lane.failure


class Commit:
    """A commit queued on every lane (:meth:`Fanout.queue_commit`)."""

    def __init__(self, answers: Sequence[Future[Any]]) -> None:
        self._answers = answers

    def wait(self) -> None:
        """Return once every adapter committed; else raise the error of the first (stores first) that did not."""
        for answer in self._answers:
            answer.result()


class _Lane:
    """One adapter's thread, working through its queue in order."""

    def __init__(self, adapter: Adapter, depth: int) -> None:
        self.adapter = adapter
        self.failure: Exception | None = None
        self._reader: StoreReader | None = None
        self._opened = False
        self._jobs: queue.SimpleQueue[tuple[Callable[..., Any], tuple[Any, ...], Future[Any] | None] | None] = \
            queue.SimpleQueue()
        self._room = threading.Semaphore(depth)
        self._thread = threading.Thread(target=self._run, name=f"phishme-adapter-{adapter.name}", daemon=True)
        self._thread.start()

    def post(self, action: str, batch: Sequence[Any], wait: bool = True) -> bool:
        """Queue ``adapter.<action>(batch)`` once the lane holds fewer than :attr:`Fanout.depth` batches.

        With ``wait`` False, only if it does now: False then, and nothing is queued.
        """
        if not self._room.acquire(blocking=wait):
            return False
        self._jobs.put((self._batch, (action, batch), None))
        return True

    def ask(self, call: Callable[..., Any], *args: Any) -> Future[Any]:
        """Queue ``call(*args)`` to run on the lane; its future holds its result or its error."""
        answer: Future[Any] = Future()
        self._jobs.put((call, args, answer))
        return answer

    def end(self) -> None:
        """Queue the adapter's close (and its reader's), then the lane's end."""
        self._jobs.put((self._close, (), None))
        self._jobs.put(None)

    def join(self) -> None:
        self._thread.join()

    def take_reader(self, store: Adapter) -> None:
        """Open a reader of ``store`` here and hand it to the adapter."""
        self._reader = _guard(store, "open", store.reader)
        _guard(self.adapter, "open", self.adapter.read_from, self._reader)

    def open(self) -> None:
        _guard(self.adapter, "open", self.adapter.open)
        self._opened = True

    def work(self, action: str, *args: Any) -> None:
        """``adapter.<action>(*args)``, or the error that ended the lane's work before."""
        if self.failure is not None:
            raise self.failure
        _guard(self.adapter, action, getattr(self.adapter, action), *args)

    def _batch(self, action: str, batch: Sequence[Any]) -> None:
        try:
            self.work(action, batch)
        finally:
            self._room.release()

    def commit_after(self, stores: Sequence[Future[Any]]) -> None:
        """Commit the adapter once every store's commit queued before this is done; not if one failed."""
        for store in stores:
            if store.exception() is not None:
                raise AdapterError(self.adapter.name, "not committed: a store it is built from failed to commit")
        self.work("commit")

    def _close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        if self._opened:
            self._opened = False
            try:
                self.adapter.close()
            except Exception:  # close must not mask the error that ended the run
                log.exception("adapter %s failed to close", self.adapter.name)

    def _run(self) -> None:
        interrupts.main_thread_only()
        while (job := self._jobs.get()) is not None:
            call, args, answer = job
            try:
                result = call(*args)
            except Exception as exc:  # the engine raises it at its next call
                self.failure = self.failure or exc
                if answer is not None:
                    answer.set_exception(exc)
            else:
                if answer is not None:
                    answer.set_result(result)


def _guard(adapter: Adapter, action: str, call: Callable[..., Any], *args: Any) -> Any:
    try:
        return call(*args)
    except (AdapterError, Interrupted):  # a signal during an adapter's retry wait stops the run
        raise
    except Exception as exc:
        log.exception("adapter %s failed to %s", adapter.name, action)
        raise AdapterError(adapter.name, f"failed to {action}: {type(exc).__name__}: {exc}") from None
