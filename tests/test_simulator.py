"""The bundled API simulator, spoken to over real loopback HTTP (see docs/api.rst)."""

from __future__ import annotations

import itertools
import signal
import subprocess
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import requests

from phishme_intel.models import parse_threat
from phishme_intel.simulator import Dataset, Simulator
from phishme_intel.simulator.process import SimulatorProcess
from phishme_intel.simulator.threats import REALISTIC

USER, PASSWORD = "user", "secret"
DAY = 86_400
MALWARE, PHISH = 120, 40


@pytest.fixture
def dataset() -> Dataset:
    return Dataset(seed=7, malware=MALWARE, phish=PHISH, days=30)


@pytest.fixture
def sim(dataset: Dataset) -> Any:
    with Simulator(dataset, user=USER, password=PASSWORD, updates_page_size=50) as simulator:
        yield simulator


@pytest.fixture
def session() -> Any:
    with requests.Session() as http:
        http.auth = (USER, PASSWORD)
        yield http


def search(session: requests.Session, sim: Simulator, **params: Any) -> requests.Response:
    return session.post(f"{sim.url}/threat/search", params=params, timeout=5)


def updates(session: requests.Session, sim: Simulator, **params: Any) -> requests.Response:
    return session.post(f"{sim.url}/threat/updates", params=params, timeout=5)


def key(threat: dict[str, Any]) -> tuple[str, int]:
    return threat["threatType"].lower(), threat["id"]


def published(threat: dict[str, Any]) -> int:
    return int(threat["lastPublished"] if threat["threatType"] == "MALWARE" else threat["lastDate"])


def everything(session: requests.Session, sim: Simulator) -> list[dict[str, Any]]:
    now, threats, page, total_pages = int(time.time()), [], 0, 1
    while page < total_pages:
        data = search(
            session, sim, beginTimestamp=now - 40 * DAY, endTimestamp=now, resultsPerPage=100, page=page
        ).json()["data"]
        threats += data["threats"]
        total_pages, page = data["page"]["totalPages"], page + 1
    return threats


# -- authentication and routing --


@pytest.mark.parametrize("auth", [None, (USER, "wrong"), ("nobody", PASSWORD)])
def test_missing_or_wrong_credentials_are_rejected(sim: Simulator, auth: Any) -> None:
    answer = requests.get(f"{sim.url}/feed/", auth=auth, timeout=5)
    assert answer.status_code == 401
    assert answer.json()["success"] is False


def test_feed_answers_with_the_feeds(sim: Simulator, session: requests.Session) -> None:
    answer = session.get(f"{sim.url}/feed/", timeout=5)
    assert answer.status_code == 200
    assert answer.json()["success"] is True
    assert {feed["displayName"] for feed in answer.json()["data"]} >= {"Cofense"}


def test_unknown_path_and_wrong_method_are_json_errors(sim: Simulator, session: requests.Session) -> None:
    assert session.get(f"{sim.url}/no/such/thing", timeout=5).status_code == 404
    assert session.get(f"{sim.url}/threat/search", timeout=5).status_code == 405
    assert session.get(f"{sim.url}/threat/malware/1", timeout=5).json()["success"] is False


# -- window search --


def test_window_search_pages_deliver_every_threat_once(
    sim: Simulator, session: requests.Session, dataset: Dataset
) -> None:
    now = int(time.time())
    bounds = [now - 31 * DAY + week * 7 * DAY for week in range(5)] + [now]
    seen: Counter[tuple[str, int]] = Counter()
    published_at = {}
    for begin, end in itertools.pairwise(bounds):
        order, page, total_pages = [], 0, 1
        while page < total_pages:
            data = search(
                session, sim, beginTimestamp=begin, endTimestamp=end, resultsPerPage=17, page=page
            ).json()["data"]
            total_pages = data["page"]["totalPages"]
            for threat in data["threats"]:
                assert begin * 1000 <= published(threat) <= end * 1000
                seen[key(threat)] += 1
                published_at[key(threat)] = published(threat)
                order.append((published(threat), *key(threat)))
            page += 1
        assert order == sorted(order)
    assert set(seen) == dataset.live_ids()
    shared_bounds = {bound * 1000 for bound in bounds[1:-1]}
    assert all(published_at[twice] in shared_bounds for twice, count in seen.items() if count > 1)


def test_window_ends_are_inclusive(dataset: Dataset) -> None:
    for threat in dataset.threats(sorted(dataset.live_ids())[:5]):
        _, found = dataset.search(published(threat), published(threat), "all", 0, 10)
        assert key(threat) in [key(match) for match in found]


def test_search_filters_by_type_and_reports_its_page(sim: Simulator, session: requests.Session) -> None:
    now = int(time.time())
    window = {"beginTimestamp": now - 40 * DAY, "endTimestamp": now, "threatType": "phish"}
    first = search(session, sim, resultsPerPage=30, page=0, **window).json()["data"]
    last = search(session, sim, resultsPerPage=30, page=1, **window).json()["data"]
    beyond = search(session, sim, resultsPerPage=30, page=2, **window).json()["data"]
    assert first["page"] == {"currentPage": 0, "totalPages": 2, "totalElements": PHISH, "currentElements": 30}
    assert last["page"]["currentElements"] == PHISH - 30
    assert beyond["page"]["currentElements"] == 0
    assert {threat["threatType"] for threat in first["threats"] + last["threats"]} == {"PHISH"}


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"beginTimestamp": 0},
        {"beginTimestamp": "yesterday", "endTimestamp": 10},
        {"beginTimestamp": 0, "endTimestamp": 10, "resultsPerPage": 0},
        {"beginTimestamp": 0, "endTimestamp": 10, "resultsPerPage": 101},
        {"beginTimestamp": 0, "endTimestamp": 10, "threatType": "spam"},
    ],
)
def test_bad_search_parameters_are_400(sim: Simulator, session: requests.Session, params: Any) -> None:
    answer = search(session, sim, **params)
    assert answer.status_code == 400
    assert answer.json()["success"] is False


def test_millisecond_timestamps_find_nothing(sim: Simulator, session: requests.Session) -> None:
    now_ms = int(time.time() * 1000)
    data = search(session, sim, beginTimestamp=now_ms - 40 * DAY * 1000, endTimestamp=now_ms).json()
    assert data["success"] is True
    assert data["data"]["page"]["totalElements"] == 0


# -- search by id, single threats, formats --


def test_search_by_id_returns_live_threats_and_skips_deleted(
    sim: Simulator, session: requests.Session, dataset: Dataset
) -> None:
    deleted = dataset.delete(1)[0]
    wanted = sorted(dataset.live_ids())[:2] + sorted(dataset.live_ids())[-1:]
    ids = [f"{kind[0]}_{threat_id}" for kind, threat_id in [*wanted, deleted]]
    in_query = search(session, sim, threatId=ids, resultsPerPage=4)
    in_body = session.post(
        f"{sim.url}/threat/search", data={"threatId": ids, "resultsPerPage": "4"}, timeout=5
    )
    for answer in (in_query, in_body):
        assert [key(threat) for threat in answer.json()["data"]["threats"]] == wanted
    assert search(session, sim, threatId=ids, resultsPerPage=3).status_code == 400


def test_one_threat_and_its_server_made_formats(
    sim: Simulator, session: requests.Session, dataset: Dataset
) -> None:
    kind, threat_id = min(dataset.live_ids())
    assert session.get(f"{sim.url}/threat/{kind}/{threat_id}").json()["data"]["id"] == threat_id
    assert session.get(f"{sim.url}/threat/{kind}/999999999").status_code == 404
    assert session.get(f"{sim.url}/t3/{kind}/{threat_id}/cef").text.startswith("CEF:0|Cofense|Intelligence|")
    assert "STIX_Package" in session.get(f"{sim.url}/t3/{kind}/{threat_id}/stix").text
    assert session.get(f"{sim.url}/t3/{kind}/{threat_id}/pdf").content.startswith(b"%PDF")
    assert session.get(f"{sim.url}/t3/{kind}/999999999/html").status_code == 404


# -- changelog --


def test_deleted_threat_leaves_search_and_is_flagged_in_changelog(
    sim: Simulator, session: requests.Session, dataset: Dataset
) -> None:
    before = int(time.time()) - 1
    kind, threat_id = dataset.delete(1)[0]
    assert (kind, threat_id) not in [key(threat) for threat in everything(session, sim)]
    assert session.get(f"{sim.url}/threat/{kind}/{threat_id}").status_code == 404
    changelog = updates(session, sim, timestamp=before).json()["data"]["changelog"]
    assert [(entry["threatType"], entry["threatId"], entry["deleted"]) for entry in changelog] == [
        (kind, threat_id, True)
    ]


def test_updates_page_through_the_changelog_until_empty(
    sim: Simulator, session: requests.Session, dataset: Dataset
) -> None:
    data = updates(session, sim, timestamp=0).json()["data"]
    entries, first_position = [], data["nextPosition"]
    while data["changelog"]:
        assert len(data["changelog"]) <= 50
        entries += data["changelog"]
        data = updates(session, sim, position=data["nextPosition"]).json()["data"]
    assert len(entries) == MALWARE + PHISH
    assert {(entry["threatType"], entry["threatId"]) for entry in entries} == dataset.live_ids()
    assert [entry["occurredOn"] for entry in entries] == sorted(entry["occurredOn"] for entry in entries)

    end = data["nextPosition"]
    assert updates(session, sim, position=end).json()["data"] == {"changelog": [], "nextPosition": end}
    republished = dataset.republish(2)
    changelog = updates(session, sim, position=end).json()["data"]["changelog"]
    assert [(entry["threatType"], entry["threatId"], entry["deleted"]) for entry in changelog] == [
        (*republished[0], False),
        (*republished[1], False),
    ]
    assert updates(session, sim, position=first_position).status_code == 200


@pytest.mark.parametrize("position", [str(uuid.uuid4()), "not-a-uuid", ""])
def test_unknown_position_is_400(sim: Simulator, session: requests.Session, position: str) -> None:
    answer = updates(session, sim, position=position)
    assert answer.status_code == 400
    assert answer.json()["success"] is False
    assert "unknown position" in answer.json()["status"]


def test_millisecond_timestamp_gives_empty_changelog_and_a_usable_position(
    sim: Simulator, session: requests.Session, dataset: Dataset
) -> None:
    data = updates(session, sim, timestamp=int(time.time() * 1000) - DAY * 1000).json()["data"]
    assert data["changelog"] == []
    added = dataset.add(malware=1)
    changelog = updates(session, sim, position=data["nextPosition"]).json()["data"]["changelog"]
    assert [(entry["threatType"], entry["threatId"]) for entry in changelog] == added


# -- transport: keep-alive, latency, faults --


def test_a_session_reuses_one_connection(sim: Simulator, session: requests.Session) -> None:
    session.get(f"{sim.url}/feed/", timeout=5)
    updates(session, sim, timestamp=int(time.time()))
    assert sim.connections == 1
    assert [(record.method, record.path, record.status) for record in sim.requests] == [
        ("GET", "/feed/", 200),
        ("POST", "/threat/updates", 200),
    ]


def test_latency_delays_api_answers(dataset: Dataset) -> None:
    with Simulator(dataset, user=USER, password=PASSWORD, latency=0.3) as sim:
        started = time.monotonic()
        requests.get(f"{sim.url}/feed/", auth=(USER, PASSWORD), timeout=5)
        assert time.monotonic() - started >= 0.3


def test_held_requests_wait_together_until_released_and_control_requests_are_never_held(sim: Simulator) -> None:
    sim.hold(after=1)
    answers: list[int] = []

    def get() -> None:
        answers.append(requests.get(f"{sim.url}/feed/", auth=(USER, PASSWORD), timeout=60).status_code)

    get()  # the one let through
    threads = [threading.Thread(target=get) for _ in range(3)]
    for thread in threads:
        thread.start()
    assert sim.wait_until_held(3)  # three answers at once: one does not block another
    stats = requests.get(sim.url.removesuffix("/apiv1") + "/_sim/stats", timeout=5).json()
    assert (answers, stats["requests"]) == ([200], 1)
    sim.release()
    for thread in threads:
        thread.join()
    assert answers == [200] * 4
    assert [record.status for record in sim.requests] == [200] * 4


@pytest.mark.parametrize(
    "kind, status", [("429", 429), ("500", 500), ("502", 502), ("503", 503), ("outage", 503)]
)
def test_status_faults_apply_to_the_next_matching_requests(
    sim: Simulator, session: requests.Session, kind: str, status: int
) -> None:
    sim.faults.add(kind, times=2, path="/feed", retry_after=7)
    assert updates(session, sim, timestamp=0).status_code == 200
    answers = [session.get(f"{sim.url}/feed/", timeout=5) for _ in range(3)]
    assert [answer.status_code for answer in answers] == [status, status, 200]
    assert [record.status for record in sim.requests] == [200, status, status, 200]
    if kind == "429":
        assert answers[0].headers["Retry-After"] == "7"


@pytest.mark.parametrize(
    "kind, error",
    [("reset", requests.ConnectionError), ("truncate", requests.exceptions.ChunkedEncodingError)],
)
def test_broken_connection_faults(sim: Simulator, session: requests.Session, kind: str, error: type) -> None:
    sim.faults.add(kind)
    with pytest.raises(error):
        session.get(f"{sim.url}/feed/", timeout=5)
    assert session.get(f"{sim.url}/feed/", timeout=5).status_code == 200
    assert [record.status for record in sim.requests] == [0, 200]


def test_stall_outlasts_the_client_timeout(sim: Simulator, session: requests.Session) -> None:
    sim.faults.add("stall", seconds=2)
    with pytest.raises(requests.ReadTimeout):
        session.get(f"{sim.url}/feed/", timeout=0.2)
    assert session.get(f"{sim.url}/feed/", timeout=5).status_code == 200


def test_invalid_json_and_success_false_faults(sim: Simulator, session: requests.Session) -> None:
    sim.faults.add("invalid_json")
    sim.faults.add("success_false")
    with pytest.raises(requests.JSONDecodeError):
        session.get(f"{sim.url}/feed/", timeout=5).json()
    assert session.get(f"{sim.url}/feed/", timeout=5).json() == {"success": False, "status": "error"}
    assert len(sim.faults) == 0


def test_control_endpoints_mutate_and_report_without_being_recorded(
    sim: Simulator, session: requests.Session
) -> None:
    control = sim.url.removesuffix("/apiv1") + "/_sim"
    session.get(f"{sim.url}/feed/", timeout=5)
    changed = requests.post(f"{control}/mutate?republish=2&delete=1&add_malware=1&add_phish=1").json()
    assert [len(changed[name]) for name in ("republished", "deleted", "added")] == [2, 1, 2]
    stats = requests.get(f"{control}/stats").json()
    assert stats == {"requests": 1, "connections": 1, "by_path": {"/feed/": 1}, "live": MALWARE + PHISH + 1}
    assert requests.post(f"{control}/fault?kind=503&path=/feed").status_code == 200
    assert session.get(f"{sim.url}/feed/", timeout=5).status_code == 503
    assert requests.post(f"{control}/fault?kind=nonsense").status_code == 400
    requests.post(f"{control}/reset_stats")
    assert sim.requests == [] and sim.connections == 0


# -- the dataset --


def test_dataset_is_deterministic_for_a_seed() -> None:
    one, two = Dataset(seed=3, malware=30, phish=10), Dataset(seed=3, malware=30, phish=10)
    assert one.live_ids() == two.live_ids() != Dataset(seed=4, malware=30, phish=10).live_ids()
    keys = sorted(one.live_ids())[:3]
    assert [threat["blockSet"] for threat in one.threats(keys)] == [
        threat["blockSet"] for threat in two.threats(keys)
    ]


def test_threats_follow_the_documented_shape() -> None:
    dataset = Dataset(seed=1, malware=50, phish=20, days=30, detections=70)
    now_ms = time.time() * 1000
    for threat in dataset.threats(sorted(dataset.live_ids())):
        assert now_ms - 30 * DAY * 1000 - 5000 <= published(threat) <= now_ms - 60_000
        if threat["threatType"] == "MALWARE":
            assert threat["firstPublished"] <= threat["lastPublished"]
            assert 2 <= len(threat["blockSet"]) <= 12
            for executable in threat.get("executableSet") or []:
                assert len(executable["vendorDetections"]) == 70
        else:
            assert threat["firstDate"] <= threat["confirmedDate"] <= threat["lastDate"]
            assert "lastPublished" not in threat


def test_the_realistic_profile_is_shaped_like_the_vendors_threats() -> None:
    dataset = Dataset(seed=1, malware=500, phish=100, profile=REALISTIC)
    keys = sorted(dataset.live_ids())
    texts = dataset.threats_json(keys)
    threats = [parse_threat(threat) for threat in dataset.threats(keys)]
    assert 9_000 <= sum(map(len, texts)) / len(texts) <= 10_500
    assert 21 <= sum(len(threat.indicators) for threat in threats) / len(threats) <= 23.5
    for threat in dataset.threats(keys):
        if threat["threatType"] == "MALWARE":
            assert 7 <= len(threat["blockSet"]) <= 15
            assert all(len(exe["vendorDetections"]) == 18 for exe in threat["executableSet"])
        nulls = [name for name, value in threat.items() if value is None and name != "executiveSummary"]
        assert nulls == []  # phishme-intelligence 4.8 stops at a null list


def test_a_few_threats_carry_messy_values() -> None:
    dataset = Dataset(seed=1, malware=1000, phish=100)
    threats = dataset.threats(sorted(dataset.live_ids()))
    assert [text for text in ["'*", "<redacted>", "%20", "bücher"] if text not in repr(threats)] == []
    assert any("sha256Hex" not in exe for threat in threats for exe in threat.get("executableSet") or [])
    never_empty = ["campaignBrandSet", "deliveryMechanisms", "subjectSet", "extractedStringSet"]
    lists = [threat.get(name, ...) for threat in threats for name in never_empty]
    assert [] in lists and None in lists and ... in lists


# -- the command line --


def test_command_line_serves_until_sigterm(tmp_path: Path) -> None:
    with SimulatorProcess(tmp_path, "--malware", "20", "--phish", "5", timeout=120,
                          stdout=subprocess.PIPE, text=True) as simulator:
        answer = requests.get(f"{simulator.url}/feed/", auth=("demo", "demo"), timeout=5)
        assert answer.status_code == 200
        simulator.process.send_signal(signal.SIGTERM)
        output, _ = simulator.process.communicate(timeout=30)
    assert simulator.process.returncode == 0
    assert output == f"simulator listening on {simulator.url}\n"


def test_a_fault_can_wait_for_n_matching_requests_and_be_cleared():
    dataset = Dataset(seed=1, malware=2, phish=0, days=1)
    with Simulator(dataset, user="u", password="p") as sim:
        sim.faults.add("503", times=5, path="/feed/", after=2)
        statuses = [requests.get(f"{sim.url}/feed/", auth=("u", "p"), timeout=5).status_code for _ in range(3)]
        sim.faults.clear()
        statuses.append(requests.get(f"{sim.url}/feed/", auth=("u", "p"), timeout=5).status_code)
    assert statuses == [200, 200, 503, 200]
