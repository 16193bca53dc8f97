"""The sync engine: from the API's search windows and updates feed to committed adapters.

It sees an :class:`~phishme_intel.client.ApiClient`, a list of
:class:`~phishme_intel.adapters.base.Adapter` objects and a checkpoint store, never a
concrete product. Delivery is at least once: the state is stored only after every adapter
committed what it covers, so a run that dies anywhere delivers some threats again next
time, and idempotent adapters make that harmless.
"""

from __future__ import annotations

import gc
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from ..adapters.base import Adapter
from ..client import ApiClient
from ..config import ApiSettings
from ..models import DEFAULT_GATE, Gate
from ..state import Checkpoint, Report, SyncState
from .backfill import backfill
from .engine import Engine, log
from .fanout import Fanout
from .pipeline import Pipeline
from .updates import follow


def synchronize(
    client: ApiClient,
    adapters: Sequence[Adapter],
    checkpoint: Checkpoint,
    api: ApiSettings,
    state: SyncState,
    on_progress: Callable[[Report], None] | None = None,
    commit_every_threats: int = Engine.commit_every_threats,
    gate: Gate = DEFAULT_GATE,
) -> Report:
    """One sync run: backfill if no position is stored, else follow the updates feed.

    Returns the run's :class:`Report`. Raises the ApiError family, AdapterError,
    CheckpointError, or Interrupted when a stop was requested (:mod:`..interrupts`, checked
    before each page or batch is delivered); whatever was stored before stays valid. ``on_progress``
    is called with the report as the run goes, and once more when it ends, however it ends.
    A backfill commits after a window once ``commit_every_threats`` threats were delivered
    since its last commit (or half a minute went by).
    ``gate`` decides which values are indicators and which are allow-listed; every adapter
    gets it (:attr:`~phishme_intel.adapters.base.Adapter.gate`) before it opens.
    """
    for adapter in adapters:
        adapter.gate = gate
    fanout = Fanout(adapters)
    pipeline = Pipeline(api.concurrency)
    run = Engine(
        client, fanout, checkpoint, api, pipeline, started=time.time(), on_progress=on_progress,
        commit_every_threats=commit_every_threats, gate=gate,
    )
    run.report.started = run.started
    with _rare_cycle_collection(), _quick_switches():
        run.load_gate()
        try:
            fanout.open()
            if state.position:
                run.report.mode = "updates"
                log.info("updates: following the feed from position %s", state.position)
                follow(run, position=state.position)
            else:
                run.report.mode = "backfill"
                backfill(run, state)
        finally:
            pipeline.close()
            fanout.close()
            run.report.finished = time.time()
            run.report.requests = client.requests_made
            run.progress()
    return run.report


@contextmanager
def _rare_cycle_collection() -> Iterator[None]:
    """Let CPython's cycle collector run rarely while the sync works; restore its thresholds after.

    A sync decodes millions of short-lived JSON containers and holds a few pages of them at a
    time. They form no reference cycles (reference counting frees them), but with the default
    thresholds the collector scans them again and again, and whole-heap collections over the
    pages in flight took a third of a backfill's CPU time in the benchmark (bench/).
    """
    thresholds = gc.get_threshold()
    gc.set_threshold(100_000, 50, 100)
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)


#: How long (s) a thread runs Python before one waiting for the interpreter's lock gets it.
SWITCH_INTERVAL = 0.0005


@contextmanager
def _quick_switches() -> Iterator[None]:
    """Hand the interpreter's lock on after :data:`SWITCH_INTERVAL` instead of 5 ms while the sync runs.

    An adapter's thread lets go of the lock for each SQLite step or system call, and when it
    comes back the main thread, decoding, holds it: with CPython's default it waited 5 ms each
    time, longer than most of the work it came back for, so the adapters made little use of
    the second core. The fetch workers come back from each read of a socket the same way.
    """
    interval = sys.getswitchinterval()
    sys.setswitchinterval(SWITCH_INTERVAL)
    try:
        yield
    finally:
        sys.setswitchinterval(interval)


__all__ = ["synchronize"]
