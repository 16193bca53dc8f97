"""Fetching ahead on a pool of workers while results are consumed in order.

A *plan* runs in a producer thread and decides what to fetch: it submits fetches to the
worker pool (:meth:`Stream.submit`) and emits items in the order the consumer must see
them (:meth:`Stream.emit`). The consumer iterates the stream and gets each item with its
fetch's result, in emission order, so deliveries and commits stay ordered while up to
``workers`` requests are in flight. ``buffered`` bounds how many fetched-but-unconsumed
results exist at once, so memory stays flat however long the sync. By default it is
``workers + 2``: each result is a page of about 1 MB, and with every adapter on the W1
backfill's peak RSS was 4 MiB lower than with ``2 * workers`` (94 -> 90 MiB). At 50 ms a
request W1 took 0.98-1.21 x its time at 0 ms, against 0.91-1.04 x (bench/run.py, three
alternating rounds): the backfill's first pages of the windows ahead hold their places,
so fewer of a window's other pages are fetched ahead.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from .. import interrupts

_DONE = object()


class Cancelled(Exception):
    """Raised inside a plan when the consumer stopped listening."""


class _Failed:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


class Stream:
    """What a plan sees: a way to start fetches and to emit items in consumption order."""

    def __init__(self, pool: ThreadPoolExecutor, buffered: int) -> None:
        self._pool = pool
        self._slots = threading.Semaphore(buffered)
        self._items: queue.Queue[Any] = queue.Queue()
        self.stopped = threading.Event()

    def submit(self, fetch: Callable[..., Any], *args: Any, **kwargs: Any) -> Future[Any]:
        """Start ``fetch(*args, **kwargs)`` on a worker; waits while ``buffered`` results are unconsumed."""
        while not self._slots.acquire(timeout=0.1):
            if self.stopped.is_set():
                raise Cancelled
        if self.stopped.is_set():
            raise Cancelled
        return self._pool.submit(fetch, *args, **kwargs)

    def start(self, fetch: Callable[..., Any], *args: Any, **kwargs: Any) -> Future[Any]:
        """Start ``fetch`` for the plan itself to await (never emitted): it takes no buffer slot."""
        if self.stopped.is_set():
            raise Cancelled
        return self._pool.submit(fetch, *args, **kwargs)

    def emit(self, tag: Any, future: Future[Any] | None = None) -> None:
        """Hand ``tag`` to the consumer, with ``future``'s result once it is ready (or None)."""
        self._items.put((tag, future))


class Pipeline:
    """A pool of ``workers`` fetch threads shared by the streams of one sync."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._pool = ThreadPoolExecutor(
            max_workers=workers, thread_name_prefix="phishme-fetch", initializer=interrupts.main_thread_only
        )

    def stream(self, plan: Callable[[Stream], None], buffered: int | None = None) -> Iterator[tuple[Any, Any]]:
        """Run ``plan`` in a producer thread; yield ``(tag, result)`` in emission order.

        An exception in the plan or in a fetch is raised here, at the item it concerns.
        Leaving the loop early stops the plan.
        """
        stream = Stream(self._pool, buffered or self.workers + 2)

        def produce() -> None:
            interrupts.main_thread_only()
            try:
                plan(stream)
                stream._items.put(_DONE)
            except Cancelled:
                pass
            except BaseException as exc:  # handed to the consumer, which re-raises it
                stream._items.put(_Failed(exc))

        producer = threading.Thread(target=produce, name="phishme-plan", daemon=True)
        producer.start()
        try:
            while True:
                item = stream._items.get()
                if item is _DONE:
                    return
                if isinstance(item, _Failed):
                    raise item.exc
                tag, future = item
                if future is None:
                    yield tag, None
                    continue
                try:
                    result = future.result()
                finally:
                    stream._slots.release()
                yield tag, result
        finally:
            stream.stopped.set()
            producer.join()

    def close(self) -> None:
        """Stop the workers; fetches not yet started are cancelled."""
        self._pool.shutdown(wait=True, cancel_futures=True)
