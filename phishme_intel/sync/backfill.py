"""The first sync: every threat last published between ``init_date`` and the backfill's end.

The span is cut into search windows of ``window_hours``; each window is paged through
``/threat/search`` with several pages in flight. The end of the span, ``backfill_until``, is
fixed when the backfill begins and stored at once, so a backfill that takes several runs
covers one span. After every few windows the adapters commit and ``backfill_done`` (the
end of the last complete window) is stored: an interrupted backfill resumes there.

When every window is delivered, the updates feed is asked for the changes after
``backfill_until`` (docs/api.rst: a threat deleted after an earlier run delivered it shows up
only there), which also yields the first position.

A window's pages are counted on its first page; if a later page reports another total
(threats were re-published or deleted while we paged, shifting the pages), the window is
fetched again, so no threat slips between two pages.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from concurrent.futures import Future
from typing import NamedTuple

from .. import interrupts
from ..client import Fetched, SearchPage
from ..errors import ApiResponseError
from ..state import SyncState
from .engine import Committer, Engine, log
from .pipeline import Stream
from .updates import follow

MAX_WINDOW_REFETCH = 3
MAX_PAGES = 10_000  # 1,000,000 threats in one window: beyond anything the vendor publishes


class Window(NamedTuple):
    """A search window: threats last published in ``[begin, end]``, epoch seconds."""

    begin: int
    end: int


def windows(begin: int, end: int, hours: int) -> Iterator[Window]:
    """Consecutive windows of ``hours`` from ``begin`` to ``end``; each starts where the last ended."""
    step = hours * 3600
    while begin < end:
        yield Window(begin, min(begin + step, end))
        begin += step


def backfill(run: Engine, state: SyncState) -> None:
    """Deliver every threat of the backfill span, resuming from ``state``; then follow updates."""
    until = state.backfill_until or int(run.started)
    start = state.backfill_done or int(run.api.init_date.timestamp())
    if state.backfill_until is None:
        run.checkpoint.save(SyncState(backfill_until=until, backfill_done=start))
    run.report.backfill_from, run.report.backfill_until = start, until
    log.info("backfill from %s to %s", _day(start), _day(until))
    threat_type = "all" if len(run.kinds) == 2 else run.kinds[0]
    since_commit, last_commit = 0, time.monotonic()
    window_totals: set[tuple[int | None, int]] = set()
    with Committer(run) as committer:
        for (window, last_page), fetched in run.pipeline.stream(lambda s: _plan(run, s, start, until, threat_type)):
            interrupts.check()
            committer.check()
            totals, delivered = _decode_and_deliver(run, window, fetched)
            window_totals.add(totals)
            since_commit += delivered
            if not last_page:
                continue
            run.report.backfill_reached = window.end
            if len(window_totals) > 1:
                since_commit += _refetch(run, window, threat_type)
            window_totals = set()
            if since_commit >= run.commit_every_threats or time.monotonic() - last_commit >= run.commit_every_seconds:
                message = ("backfill: up to %s delivered (%d threats)", _day(window.end), run.report.delivered)
                committer.start(SyncState(backfill_until=until, backfill_done=window.end),
                                lambda message=message: log.info(*message))
                since_commit, last_commit = 0, time.monotonic()
        committer.start(SyncState(backfill_until=until, backfill_done=until))
    log.info("backfill: complete (%d threats); asking for the changes since %s", run.report.delivered, _day(until))
    follow(run, timestamp=until)


def _plan(run: Engine, stream: Stream, start: int, until: int, threat_type: str) -> None:
    """Producer: first pages of the next windows ahead, then each window's other pages.

    The consumer gets the pages as fetched bytes and decodes each one as it delivers it; the
    plan decodes a window's first page too, for the number of pages, and lets it go.
    """
    def first(window: Window) -> tuple[Window, Future[Fetched[SearchPage]]]:
        return window, stream.submit(run.client.fetch_window, window.begin, window.end, 0, threat_type)

    pending = windows(start, until, run.api.window_hours)
    ahead = [first(w) for _, w in zip(range(run.pipeline.workers), pending, strict=False)]
    while ahead:
        window, head = ahead.pop(0)
        following = next(pending, None)
        if following is not None:
            ahead.append(first(following))
        total = max(1, plausible(run, window, head.result().result()).total_pages)
        stream.emit((window, total == 1), head)
        for number in range(1, total):
            page = stream.submit(run.client.fetch_window, window.begin, window.end, number, threat_type)
            stream.emit((window, number == total - 1), page)


def _decode_and_deliver(
    run: Engine, window: Window, fetched: Fetched[SearchPage]
) -> tuple[tuple[int | None, int], int]:
    """Decode a fetched page and deliver its threats: its totals, and how many it delivered.

    The decoded page lives only in here, so it is gone before the next one is decoded.
    """
    page = plausible(run, window, fetched.result())
    return _totals(page), _deliver(run, page)


def plausible(run: Engine, window: Window, page: SearchPage) -> SearchPage:
    """``page``, if its counts can be true; else ApiResponseError (exit 69) saying what the API claimed.

    A window of ``totalElements`` threats has ``ceil(totalElements / results_per_page)``
    pages (at most :data:`MAX_PAGES` when the API gives no ``totalElements``), and none
    before the last comes back empty. So a
    window that claims a billion pages ends the run at its first page, before any request
    for the pages it claims.
    """
    per_page = run.api.results_per_page
    claimed = f"window {_day(window.begin)} to {_day(window.end)}: page {page.page} said totalPages {page.total_pages}"
    if page.total_elements is None:
        if page.total_pages > MAX_PAGES:
            raise ApiResponseError(f"POST /threat/search, {claimed}, more than {MAX_PAGES:,}: the API is lying")
    elif page.total_pages != -(-page.total_elements // per_page):
        raise ApiResponseError(
            f"POST /threat/search, {claimed} for totalElements {page.total_elements} at {per_page} a page: "
            "the API is lying about its pages"
        )
    if not page.threats and page.page < page.total_pages - 1:
        raise ApiResponseError(f"POST /threat/search, {claimed}, but held no threat: the API is lying about its pages")
    return page


def _deliver(run: Engine, page: SearchPage) -> int:
    threats = run.parse(page.threats, page.texts)
    run.deliver(threats)
    run.progress()
    return len(threats)


def _totals(page: SearchPage) -> tuple[int | None, int]:
    """The window's size as a page tells it; pages that disagree mean it changed while we paged."""
    return page.total_elements, page.total_pages


def _refetch(run: Engine, window: Window, threat_type: str) -> int:
    """Fetch a window again, page after page, until its totals hold still."""
    delivered = 0
    for _ in range(MAX_WINDOW_REFETCH):
        log.info("backfill: window %s changed while paging; fetching it again", _day(window.begin))
        first = plausible(run, window, run.client.search_window(window.begin, window.end, 0, threat_type))
        totals = {_totals(first)}
        delivered += _deliver(run, first)
        for number in range(1, first.total_pages):
            interrupts.check()
            page = plausible(run, window, run.client.search_window(window.begin, window.end, number, threat_type))
            totals.add(_totals(page))
            delivered += _deliver(run, page)
        if len(totals) == 1:
            return delivered
    log.warning("backfill: window %s kept changing; the updates feed will bring what changed", _day(window.begin))
    return delivered


def _day(epoch: int) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")
