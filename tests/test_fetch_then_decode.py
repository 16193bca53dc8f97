"""Search answers fetched on one thread are decoded by the thread that uses them."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

from support import api_settings, run_cli, store

from phishme_intel.client import ApiClient, Fetched


def client_for(simulator) -> ApiClient:
    return ApiClient(api_settings(simulator.url, retry_backoff=0.01))


def test_a_fetched_page_decodes_to_what_a_search_returns(simulator):
    client = client_for(simulator)
    now = int(time.time())
    with ThreadPoolExecutor(max_workers=1) as worker:
        fetched = worker.submit(client.fetch_window, now - 30 * 86400, now, 1, "all").result()

    page = fetched.result()

    assert page == client.search_window(now - 30 * 86400, now, 1, "all")
    assert (page.page, len(page.threats), len(page.texts)) == (1, 100, 100)
    client.close()


def test_an_answer_that_is_not_json_is_asked_for_again_when_it_is_decoded(simulator):
    client = client_for(simulator)
    now = int(time.time())
    simulator.faults.add("invalid_json", times=2)

    fetched = client.fetch_window(now - 30 * 86400, now, 0, "all")
    assert len(simulator.requests) == 1

    page = fetched.result()

    assert len(page.threats) == 100
    assert [record.status for record in simulator.requests] == [200, 200, 200]
    client.close()


def test_a_sync_asks_again_for_search_answers_that_are_not_json_and_completes(config, simulator, dataset):
    simulator.faults.add("invalid_json", times=3, path="/threat/search")

    result = run_cli(config)

    assert result.returncode == 0, result.stderr
    assert store(config.parent / "phishme_intel.sqlite3")["threats"] == dataset.live_ids()
    assert "the answer is not valid JSON" in (config.parent / "phishme_intel.log").read_text()


def test_search_answers_that_stay_unusable_end_the_run_with_69_and_no_position(config, simulator):
    simulator.faults.add("success_false", times=1000, path="/threat/search")

    result = run_cli(config)

    assert result.returncode == 69
    assert "failed 4 times, last: the answer does not say success" in result.stderr
    assert [line.strip() for line in config.read_text().splitlines() if line.startswith("position")] == ["position ="]


def test_a_fetched_answer_is_decoded_once_however_often_it_is_read():
    decoded = []

    def decode(body):
        decoded.append(body)
        return body.decode()

    fetched = Fetched(b"page", 1, decode, again=lambda retry, attempt: (b"", attempt))

    assert [fetched.result(), fetched.result()] == ["page", "page"]
    assert decoded == [b"page"]
