"""Polite to the API: the client-side rate limit holds across workers, and a 429 slows every worker."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

from support import api_settings

from phishme_intel.client import ApiClient
from phishme_intel.models import ThreatRef


def client_for(simulator, **changes) -> ApiClient:
    return ApiClient(api_settings(simulator.url, concurrency=4, **changes))


def fetch_from_four_workers(client: ApiClient, refs: list[ThreatRef], requests: int) -> None:
    with ThreadPoolExecutor(max_workers=4) as pool:
        for page in pool.map(lambda _: client.search_ids(refs), range(requests)):
            assert len(page.threats) == len(refs)
    client.close()


def test_max_requests_per_second_holds_across_every_worker(simulator, dataset):
    client = client_for(simulator, max_requests_per_second=20)

    started = time.monotonic()
    fetch_from_four_workers(client, [ThreatRef(*key) for key in sorted(dataset.live_ids())[:5]], 12)

    # Request k (from 0) may leave no sooner than k / 20 s after the first, whichever worker sends it,
    # and arrives no sooner than it leaves: a busy machine only makes the arrivals later.
    arrivals = sorted(record.time for record in simulator.requests)
    assert len(arrivals) == 12
    assert [k for k, arrival in enumerate(arrivals) if arrival - started < k / 20] == [], arrivals


def test_a_429_without_retry_after_holds_back_every_worker_not_only_the_one_it_hit(simulator, dataset):
    client = client_for(simulator, retry_backoff=1.0)
    simulator.faults.add("429", times=1, after=4)

    fetch_from_four_workers(client, [ThreatRef(*key) for key in sorted(dataset.live_ids())[:5]], 40)

    records = simulator.requests
    limited = next(record.time for record in records if record.status == 429)
    # The retry waits 0.5 to 1 s (back-off with jitter) and the other three workers wait with it:
    # in the next 0.5 s arrive at most, from each of them, the request it had in flight and one it
    # may have sent before the pause began. Without the pause, the remaining 36 would arrive.
    assert len([r for r in records if limited < r.time < limited + 0.5]) <= 2 * 3
    assert len(records) == 41
