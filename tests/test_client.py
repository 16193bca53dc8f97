"""The API client against the simulator: retries, backoff, keep-alive, and errors callers can catch."""

from __future__ import annotations

import itertools
import logging

import pytest
from support import PASSWORD, api_settings

from phishme_intel.client import ApiClient
from phishme_intel.errors import ApiUnavailable, AuthError, UnknownPosition
from phishme_intel.logs import logging_to
from phishme_intel.models import ThreatRef


@pytest.fixture
def client(simulator):
    api = ApiClient(api_settings(simulator.url))
    yield api
    api.close()


@pytest.mark.parametrize("fault", ["429", "500", "502", "503", "reset", "truncate", "invalid_json", "success_false"])
def test_a_passing_fault_is_retried_and_the_call_succeeds(client, simulator, fault):
    simulator.faults.add(fault, times=2)

    client.check()

    assert [r.path for r in simulator.requests] == ["/feed/"] * 3
    assert client.requests_made == 3


def test_retries_are_bounded_then_api_unavailable(client, simulator):
    simulator.faults.add("503", times=50)

    with pytest.raises(ApiUnavailable, match="failed 4 times, last: HTTP 503"):
        client.check()

    assert len(simulator.requests) == 4


def test_retries_back_off_exponentially(client, simulator):
    simulator.faults.add("500", times=3)

    client.check()

    # retry k waits at least half of 0.05 * 2**k (the rest is jitter); a busy machine only adds to it
    times = [r.time for r in simulator.requests]
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert len(gaps) == 3
    assert gaps[0] >= 0.025 and gaps[1] >= 0.05 and gaps[2] >= 0.1, gaps


def test_retry_after_is_honoured(client, simulator):
    simulator.faults.add("429", times=1, retry_after=1)

    client.check()

    first, second = simulator.requests
    assert second.time - first.time >= 0.95


def test_a_stall_longer_than_the_timeout_is_retried(simulator):
    client = ApiClient(api_settings(simulator.url, timeout=2.0))
    simulator.faults.add("stall", times=1, seconds=600)  # the simulator's stop ends it

    client.check()

    assert len(simulator.requests) == 2
    client.close()


def test_wrong_credentials_raise_auth_error_without_retrying(simulator):
    client = ApiClient(api_settings(simulator.url, password="wrong"))

    with pytest.raises(AuthError, match="HTTP 401"):
        client.check()

    assert len(simulator.requests) == 1


def test_unknown_position_raises_unknown_position(client):
    with pytest.raises(UnknownPosition, match="empty \\[pm_api\\] position"):
        client.updates(position="0b3c0c7e-8a4c-4a47-9c66-0d5e62d3a2b1")


def test_requests_reuse_one_connection(client, simulator, dataset):
    refs = [ThreatRef(kind, tid) for kind, tid in sorted(dataset.live_ids())[:50]]

    for _ in range(5):
        assert len(client.search_ids(refs).threats) == 50

    assert simulator.connections == 1


def test_search_by_id_leaves_out_deleted_threats(client, dataset):
    keys = sorted(dataset.live_ids())[:10]
    dataset.delete_keys(keys[:3])

    threats = client.search_ids([ThreatRef(kind, tid) for kind, tid in keys]).threats

    assert {(t["threatType"].lower(), t["id"]) for t in threats} == set(keys[3:])


def test_the_password_never_reaches_the_debug_log(client, simulator, tmp_path):
    log_file = tmp_path / "debug.log"
    simulator.faults.add("500", times=1)
    simulator.faults.add("reset", times=1)

    with logging_to(str(log_file), "debug", [PASSWORD]):
        logging.getLogger("phishme_intel.test").debug("auth header would be %s", PASSWORD)
        client.check()
        client.updates(timestamp=0)

    text = log_file.read_text()
    assert "retry 1 of 3" in text and "auth header would be ***" in text
    assert PASSWORD not in text
