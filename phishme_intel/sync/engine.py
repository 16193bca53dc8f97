"""The engine of one sync run: its parts, its clock, its counts, and the commit that orders them."""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from .. import interrupts
from ..client import ApiClient
from ..config import ApiSettings
from ..errors import ThreatFormatError
from ..models import DEFAULT_GATE, MALWARE, PHISH, Gate, Threat, parse_threat
from ..models.indicators import load_public_suffixes
from ..state import Checkpoint, Report, SyncState
from .fanout import Commit, Fanout
from .pipeline import Pipeline

log = logging.getLogger("phishme_intel.sync")


@dataclass
class Engine:
    """The parts of one sync run, and its report; backfill and updates drive it."""

    client: ApiClient
    fanout: Fanout
    checkpoint: Checkpoint
    api: ApiSettings
    pipeline: Pipeline
    started: float
    report: Report = field(default_factory=Report)
    on_progress: Callable[[Report], None] | None = None
    #: A backfill commits (and stores its checkpoint) at the end of the first window after
    #: this many threats were delivered since its last commit, or after ``commit_every_seconds``.
    commit_every_threats: int = 5000
    commit_every_seconds: float = 30.0
    gate: Gate = DEFAULT_GATE
    _allowlisted_seen: set[tuple[str, str]] = field(default_factory=set, init=False, repr=False)
    _gate_loading: threading.Thread | None = field(default=None, init=False, repr=False)

    def load_gate(self) -> None:
        """Start reading what the gate needs (the Public Suffix List) on a thread of its own.

        A run's first requests leave the main thread waiting for their answers; read at the
        first domain the gate judged, the list (40-80 ms) came after them, before the first
        batch reached the adapters. :meth:`tally` waits for it.
        """
        self._gate_loading = threading.Thread(target=_load_gate, name="phishme-gate", daemon=True)
        self._gate_loading.start()

    @property
    def kinds(self) -> tuple[str, ...]:
        """The threat kinds config asks for: ``malware``, ``phish`` or both."""
        return tuple(kind for kind, on in ((MALWARE, self.api.malware), (PHISH, self.api.phish)) if on)

    def parse(self, raws: Iterable[Any], texts: Iterable[str] | None = None) -> list[Threat]:
        """The threats of one answer that parse and are of a wanted kind; one bad threat is logged and skipped.

        ``texts``: the JSON text of each raw threat as received, when known (see :func:`parse_threat`).
        """
        threats = []
        for raw, text in zip(raws, texts, strict=True) if texts is not None else ((raw, None) for raw in raws):
            try:
                threat = parse_threat(raw, text, self.gate)
            except ThreatFormatError as exc:
                self.report.skipped_invalid += 1
                log.warning("skipped a threat the API sent: %s", exc)
                continue
            if threat.kind in self.kinds:
                threats.append(threat)
        return threats

    def deliver(self, threats: list[Threat]) -> None:
        """:meth:`tally` ``threats``, then hand them to the adapters, and count them."""
        self.tally(threats)
        self.fanout.deliver(threats)
        self.report.delivered += len(threats)

    def tally(self, threats: list[Threat]) -> None:
        """Count the values of ``threats`` the gate turned away or allow-lists.

        A rejected value is logged at debug with its threat; an allow-listed one at info, once per run.
        The gate runs here, before the adapters get the threats on their threads.
        """
        if self._gate_loading is not None:
            self._gate_loading.join()
            self._gate_loading = None
        report = self.report
        for threat in threats:
            for rejected in threat.rejected:
                report.rejected[rejected.kind, rejected.reason] += 1
                log.debug("%s %d: %s %r is not an indicator (%s)", threat.kind, threat.id, rejected.kind,
                          rejected.value, rejected.reason)
            for indicator in threat.indicators:
                if indicator.allowlisted:
                    report.allowlisted[indicator.kind] += 1
                    if (indicator.kind, indicator.value) not in self._allowlisted_seen:
                        self._allowlisted_seen.add((indicator.kind, indicator.value))
                        log.info("allow-listed, emitted by no adapter: %s %s (first in %s %d)", indicator.kind,
                                 indicator.value, threat.kind, threat.id)

    def progress(self) -> None:
        """Show the report as it stands to the caller's ``on_progress`` hook, if it gave one."""
        if self.on_progress is not None:
            self.on_progress(self.report)

    def store(self, state: SyncState) -> None:
        """Store ``state`` (every adapter committed what it stands for) and count the commit."""
        self.checkpoint.save(state)
        self.report.commits += 1
        self.report.position = state.position
        self.report.backfill_done = state.backfill_done


class Committer:
    """A run's commits: each queued where the sync stands, stored on a thread of its own while the sync goes on.

    :meth:`start` queues, on every adapter's lane, the commit of everything handed over so
    far (:meth:`Fanout.queue_commit`) and returns: what the sync hands over next goes
    behind it, into the next commit. The ``phishme-commit`` thread waits until every adapter
    committed it, and only then stores its state (checkpoint or position) and calls ``done``;
    states are stored in the order their commits were started, none after a commit that
    failed. :meth:`check` raises the error of a commit that failed, without waiting.
    Leaving the ``with`` block waits for every commit started; a commit that failed is the
    run's error then, as it came before whatever else stopped the run.
    """

    def __init__(self, run: Engine) -> None:
        self._run = run
        self._thread = ThreadPoolExecutor(1, "phishme-commit", initializer=interrupts.main_thread_only)
        self._pending: deque[Future[None]] = deque()
        self._failed = False

    def __enter__(self) -> Committer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        try:
            while self._pending:
                self._pending.popleft().result()
        finally:
            self._thread.shutdown()

    def start(self, state: SyncState, done: Callable[[], None] = lambda: None) -> None:
        """Queue the commit of everything handed over so far; ``state`` is stored once every adapter made it."""
        self.check()
        commit = self._run.fanout.queue_commit()
        self._pending.append(self._thread.submit(self._store, commit, state, done))

    def check(self) -> None:
        """Raise the error of a commit that failed, if one did (the commits still in flight are not waited for)."""
        while self._pending and self._pending[0].done():
            self._pending.popleft().result()

    def _store(self, commit: Commit, state: SyncState, done: Callable[[], None]) -> None:
        if self._failed:  # that commit's error is the run's; nothing after it is stored
            return
        try:
            commit.wait()
            self._run.store(state)
        except BaseException:
            self._failed = True
            raise
        done()


def _load_gate() -> None:
    interrupts.main_thread_only()
    load_public_suffixes()
