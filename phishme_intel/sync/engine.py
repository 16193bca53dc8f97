"""What one sync run carries around: its parts, its clock and its counts."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..client import ApiClient
from ..config import ApiSettings, SyncState
from ..errors import ThreatFormatError
from ..models import MALWARE, PHISH, Threat, parse_threat
from .pipeline import Pipeline
from .products import Products

log = logging.getLogger("phishme_intel.sync")


class Checkpoint(Protocol):
    """Where the sync stores its :class:`~phishme_intel.config.SyncState` after each commit."""

    def save(self, state: SyncState) -> None: ...


@dataclass
class Report:
    """What a run did. ``mode`` is ``backfill`` or ``updates``; times are epoch seconds.

    A backfill also tells how far it has come: its span ``backfill_from`` to
    ``backfill_until`` and ``backfill_reached``, the end of the last search window delivered.
    """

    mode: str = ""
    started: float = 0.0
    finished: float = 0.0
    delivered: int = 0
    withdrawn: int = 0
    skipped_expired: int = 0
    skipped_invalid: int = 0
    commits: int = 0
    requests: int = 0
    position: str | None = None
    backfill_done: int | None = None
    backfill_from: int | None = None
    backfill_until: int | None = None
    backfill_reached: int | None = None


@dataclass
class Run:
    """The parts of one sync run, and its report."""

    client: ApiClient
    products: Products
    checkpoint: Checkpoint
    api: ApiSettings
    pipeline: Pipeline
    started: float
    report: Report = field(default_factory=Report)
    on_progress: Callable[[Report], None] | None = None

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
                threat = parse_threat(raw, text)
            except ThreatFormatError as exc:
                self.report.skipped_invalid += 1
                log.warning("skipped a threat the API sent: %s", exc)
                continue
            if threat.kind in self.kinds:
                threats.append(threat)
        return threats

    def progress(self) -> None:
        """Show the report as it stands to the caller's ``on_progress`` hook, if it gave one."""
        if self.on_progress is not None:
            self.on_progress(self.report)

    def commit(self, state: SyncState) -> None:
        """Commit every adapter, then (and only then) store ``state``."""
        self.products.commit()
        self.checkpoint.save(state)
        self.report.commits += 1
        self.report.position = state.position
        self.report.backfill_done = state.backfill_done
