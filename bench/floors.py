"""The floors a backfill cannot beat, measured against the same simulator in the same run.

I/O floor: every page of the backfill's search windows fetched with the sync's concurrency
and HTTP library (one kept-alive ``requests`` session per worker), and nothing done with
the bytes. Decode floor: ``orjson.loads`` (the C decoder the client uses) of those same
bytes, one after another. Store
floor: the SQLite adapter storing the threats of those pages (parsed, indicators found,
beforehand) into a fresh file, committing as often as the backfill does: the store's own
share of a backfill.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import orjson
import requests

from phishme_intel.adapters.sqlite import SqliteAdapter
from phishme_intel.client.jsontext import decode_answer
from phishme_intel.models import parse_threat
from phishme_intel.sync.backfill import windows
from phishme_intel.sync.engine import Engine

PER_PAGE = 100
WINDOW_HOURS = 24
_TOTAL_PAGES = re.compile(rb'"totalPages":\s*([0-9]+)')


@dataclass(frozen=True)
class Floors:
    """Seconds to fetch every backfill page (I/O), to decode them (``orjson.loads``), to store their threats."""

    io: float
    decode: float
    store: float
    pages: int
    megabytes: float


def measure(url: str, user: str, password: str, begin: int, end: int, concurrency: int, folder: Path) -> Floors:
    """Fetch the pages of the backfill from ``begin`` to ``end`` (epoch s), decode them, store them in ``folder``."""
    fetcher = _Fetcher(url, (user, password))
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        pages = list(_all_pages(pool, fetcher, begin, end))
    io = time.perf_counter() - started
    fetcher.close()
    started = time.perf_counter()
    for page in pages:
        orjson.loads(page)
    decode = time.perf_counter() - started
    return Floors(io, decode, _store(pages, folder), len(pages), sum(map(len, pages)) / 1e6)


def _store(pages: list[bytes], folder: Path) -> float:
    batches = []
    for page in pages:
        body, texts = decode_answer(page, ("data", "threats"))
        batches.append([parse_threat(raw, text) for raw, text in zip(body["data"]["threats"], texts, strict=True)])
        for threat in batches[-1]:
            threat.indicators  # noqa: B018 - found now, so the timing below is the store's alone
    store = SqliteAdapter({"path": str(folder / "floor.sqlite3")})
    started, since_commit = time.perf_counter(), 0
    store.open()
    for batch in batches:
        store.deliver(batch)
        since_commit += len(batch)
        if since_commit >= Engine.commit_every_threats:
            store.commit()
            since_commit = 0
    store.commit()
    store.close()
    return time.perf_counter() - started


def _all_pages(pool: ThreadPoolExecutor, fetcher: _Fetcher, begin: int, end: int) -> Iterator[bytes]:
    """Every page, windows in parallel: a window's first page submits its other pages."""

    def window(begin: int, end: int) -> tuple[bytes, list[Future[bytes]]]:
        first = fetcher.page(begin, end, 0)
        found = _TOTAL_PAGES.search(first[:300])
        total = int(found[1]) if found else 1
        return first, [pool.submit(fetcher.page, begin, end, number) for number in range(1, total)]

    heads = [pool.submit(window, w.begin, w.end) for w in windows(begin, end, WINDOW_HOURS)]
    for head in heads:
        first, others = head.result()
        yield first
        yield from (other.result() for other in others)


class _Fetcher:
    """``POST /threat/search`` pages over one kept-alive session per thread."""

    def __init__(self, url: str, auth: tuple[str, str]) -> None:
        self._url = url + "/threat/search"
        self._auth = auth
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        self._lock = threading.Lock()

    def page(self, begin: int, end: int, number: int) -> bytes:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
            session.auth = self._auth
            with self._lock:
                self._sessions.append(session)
        answer = session.post(self._url, params={
            "beginTimestamp": begin, "endTimestamp": end, "threatType": "all",
            "resultsPerPage": PER_PAGE, "page": number,
        }, timeout=60)
        answer.raise_for_status()
        return answer.content

    def close(self) -> None:
        for session in self._sessions:
            session.close()
