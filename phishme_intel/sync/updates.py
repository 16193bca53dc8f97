"""Following the updates feed from a position (or, after a backfill, from a time).

Each changelog page is one unit of work: its entries are reduced to the last change per
threat; deletions are withdrawn, changed threats are fetched by id (≤100 per request,
several requests in flight) and delivered; then the adapters commit and the page's
``nextPosition`` is stored. Pages are fetched until one comes back empty. While a page is
being delivered the next one is already being fetched.

A page's commit is queued on every adapter's lane behind the page (:class:`.engine.Committer`)
and its position stored once every adapter made it, while the next page goes on to the
adapters behind that commit: no position is stored before every adapter committed its
page, and a run that stops keeps the last position whose commit was made.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from .. import interrupts
from ..client import Fetched, SearchPage, UpdatesPage
from ..errors import ApiResponseError, ThreatFormatError
from ..models import ChangelogEntry, ThreatRef, parse_changelog_entry
from ..state import SyncState
from .engine import Committer, Engine, log
from .pipeline import Stream

BATCH = 100


def follow(run: Engine, *, position: str | None = None, timestamp: int | None = None) -> None:
    """Apply every change after ``position`` (or after ``timestamp``), storing the position per page."""
    stored = position
    expiry = _expiry(run)
    with Committer(run) as committer:
        for tag, result in run.pipeline.stream(lambda stream: _plan(run, stream, position, timestamp)):
            interrupts.check()
            committer.check()
            kind, value = tag
            if kind == "withdraw":
                run.fanout.withdraw(value)
                run.report.withdrawn += len(value)
            elif kind == "batch":
                _deliver(run, result, expiry)
            elif kind == "invalid":
                run.report.skipped_invalid += value
            elif value != stored:
                message = ("updates: position %s stored (%d delivered, %d withdrawn so far)",
                           value, run.report.delivered, run.report.withdrawn)  # the counts it covers
                committer.start(SyncState(position=value), lambda message=message: log.info(*message))
                stored = value
            run.progress()


def _deliver(run: Engine, fetched: Fetched[SearchPage], expiry: int) -> None:
    """Decode a batch fetched by id and deliver its threats that are not expired.

    The decoded batch lives only in here, so it is gone before the next one is decoded.
    """
    page = fetched.result()
    threats = run.parse(page.threats, page.texts)
    fresh = [t for t in threats if t.first_published >= expiry]
    run.report.skipped_expired += len(threats) - len(fresh)
    run.deliver(fresh)


def _plan(run: Engine, stream: Stream, position: str | None, timestamp: int | None) -> None:
    """Producer: fetch changelog pages one after another and the changed threats of each."""
    page = stream.start(run.client.updates, position=position, timestamp=timestamp).result()
    sane = SaneFeed(run.api.max_changes_per_run, position)
    while True:
        sane.check(page)
        following = stream.start(run.client.updates, position=page.next_position) if page.changelog else None
        deleted, changed, invalid = reduce_changelog(page.changelog, run.kinds)
        if invalid:
            stream.emit(("invalid", invalid))
        if deleted:
            stream.emit(("withdraw", deleted))
        for start in range(0, len(changed), BATCH):
            stream.emit(("batch", None), stream.submit(run.client.fetch_ids, changed[start:start + BATCH]))
        stream.emit(("position", page.next_position))
        if following is None:
            return
        page = following.result()


class SaneFeed:
    """Tells a feed that is going round in circles or will not end from a real one.

    A real feed moves forward: a page with entries hands a position it has not handed
    before, and a page without entries ends the run's reading. :meth:`check` raises
    ApiResponseError (exit 69) when a page with entries comes with a position seen among the
    last :data:`REMEMBERED` of this run (a loop), or when the run has read more than
    ``limit`` entries (``[pm_api] max_changes_per_run``). The error is raised before that
    page is delivered: what was committed before it stays, nothing after it is stored.
    """

    REMEMBERED = 1000

    def __init__(self, limit: int, position: str | None) -> None:
        self.limit = limit
        self.changes = 0
        self.pages = 0
        self._seen: dict[str, None] = dict.fromkeys([position] if position else [])

    def check(self, page: UpdatesPage) -> None:
        """Note ``page``; raise ApiResponseError if the feed misbehaves."""
        self.pages += 1
        self.changes += len(page.changelog)
        if page.changelog and page.next_position in self._seen:
            raise ApiResponseError(
                f"POST /threat/updates handed the position {page.next_position} again, with "
                f"{len(page.changelog)} more changes: the feed is going round in circles "
                f"(stopped after {self.pages} pages, {self.changes} changes)"
            )
        if self.changes > self.limit:
            raise ApiResponseError(
                f"POST /threat/updates gave more than {self.limit:,} changes in one run and was still going "
                f"([pm_api] max_changes_per_run; {self.pages} pages): stopped; delivered up to the last page"
            )
        self._seen[page.next_position] = None
        if len(self._seen) > self.REMEMBERED:
            del self._seen[next(iter(self._seen))]


def reduce_changelog(entries: Sequence[Any], kinds: Sequence[str]) -> tuple[list[ThreatRef], list[ThreatRef], int]:
    """The page's deleted threats, its changed (not deleted) threats, and how many entries were unusable.

    The same threat may appear several times: its last entry decides. Kinds not asked for are dropped.
    """
    last: dict[ThreatRef, ChangelogEntry] = {}
    invalid = 0
    for raw in entries:
        try:
            entry = parse_changelog_entry(raw)
        except ThreatFormatError as exc:
            invalid += 1
            log.warning("skipped a changelog entry: %s", exc)
            continue
        if entry.ref.kind in kinds:
            last.pop(entry.ref, None)
            last[entry.ref] = entry
    deleted = [ref for ref, entry in last.items() if entry.deleted]
    changed = [ref for ref, entry in last.items() if not entry.deleted]
    return deleted, changed, invalid


def _expiry(run: Engine) -> int:
    """Threats first published before this instant (epoch ms) are skipped; 0 when expiry is off."""
    days = run.api.expired_threat_days
    return int((time.time() - days * 86400) * 1000) if days else 0
