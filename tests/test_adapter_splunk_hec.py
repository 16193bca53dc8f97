"""Splunk HEC: the adapter contract and the collector's request format, against a real local
HTTP(S) listener that checks every request as a collector would."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from contract import AdapterContract, deliver
from hec_collector import TOKEN, Collector, parse_events, serving
from support import run_cli, sample_threats, write_config

from phishme_intel import config as config_module
from phishme_intel.adapters.splunk_hec import SplunkHecAdapter
from phishme_intel.errors import AdapterError, ConfigError
from phishme_intel.models import ThreatRef, parse_threat


@pytest.fixture
def collector() -> Iterator[Collector]:
    with serving(Collector()) as server:
        yield server


@pytest.fixture
def tls_collector(server_tls) -> Iterator[Collector]:
    with serving(Collector(server_tls)) as server:
        yield server


def hec(url: str, **settings) -> SplunkHecAdapter:
    defaults = {
        "url": url, "token": TOKEN, "index": None, "sourcetype": "cofense:intelligence", "source": "phishme-intel",
        "indicator_events": False, "batch_size": 100, "ssl_verify": True, "ca_bundle": None, "timeout": 5.0,
        "max_retries": 3, "retry_backoff": 0.01, "use_ack": False, "ack_timeout": 10.0,
    }
    return SplunkHecAdapter({**defaults, **settings})


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def make_adapter(collector):
    return lambda: hec(collector.url, indicator_events=True)


@pytest.fixture
def held(collector):
    return collector.held


@pytest.fixture
def broken_adapter():
    return hec(f"http://127.0.0.1:{closed_port()}", max_retries=0)


class TestSplunkHecContract(AdapterContract):
    pass


RAW = {
    "id": 77, "threatType": "MALWARE", "label": "Invoice - Emotet",
    "firstPublished": 1700000000123, "lastPublished": 1700000600456,
    "blockSet": [{"blockType": "IPv4 Address", "impact": "Major", "role": "C2", "data_1": "192.0.2.10",
                  "malwareFamily": {"familyName": "Emotet"}}],
}


def test_events_carry_time_metadata_and_the_threat_in_the_hec_format(collector):
    deliver(hec(collector.url, index="threat_intel", indicator_events=True), [parse_threat(RAW)],
         withdrawn=[ThreatRef("phish", 5)])

    [request] = collector.requests
    assert request["path"] == "/services/collector/event"
    assert request["headers"]["Authorization"] == f"Splunk {TOKEN}"
    threat, indicator, deletion = collector.events
    metadata = {"index": "threat_intel", "sourcetype": "cofense:intelligence", "source": "phishme-intel"}
    assert threat == {"time": 1700000600.456, **metadata, "event": {
        "action": "upsert", "event_type": "threat", "threat_type": "malware", "threat_id": 77,
        "label": "Invoice - Emotet", "first_published": 1700000000123, "last_published": 1700000600456,
        "indicator_count": 1, "threat": RAW,
    }}
    assert indicator == {"time": 1700000600.456, **metadata, "event": {
        "action": "upsert", "event_type": "indicator", "threat_type": "malware", "threat_id": 77,
        "indicator_type": "ipv4", "value": "192.0.2.10", "impact": "Major", "role": "C2", "malware_family": "Emotet",
    }}
    assert deletion["event"] == {"action": "delete", "event_type": "threat", "threat_type": "phish", "threat_id": 5}


def test_without_indicator_events_each_threat_is_one_event_and_index_is_left_to_the_token(collector):
    threats = sample_threats()
    deliver(hec(collector.url), threats)
    assert [e["event"]["threat_id"] for e in collector.events] == [t.id for t in threats]
    assert all("index" not in event for event in collector.events)


def test_a_full_url_to_the_endpoint_is_used_as_it_is(collector):
    deliver(hec(collector.url + "/services/collector/event"), sample_threats()[:1])
    assert [r["path"] for r in collector.requests] == ["/services/collector/event"]


def test_events_go_in_batches_of_batch_size_and_the_rest_at_commit(collector):
    adapter = hec(collector.url, batch_size=4)
    adapter.open()
    adapter.deliver(sample_threats(malware=6, phish=3))
    assert [len(parse_events(r["body"].decode())) for r in collector.requests] == [4, 4]
    adapter.commit()
    adapter.close()
    assert [len(parse_events(r["body"].decode())) for r in collector.requests] == [4, 4, 1]


def test_events_not_committed_are_never_sent(collector):
    adapter = hec(collector.url)
    adapter.open()
    adapter.deliver(sample_threats())
    adapter.close()
    assert collector.requests == []


def test_503_and_429_are_retried_with_the_same_batch(collector):
    collector.faults = [503, 429]
    threats = sample_threats()
    deliver(hec(collector.url), threats)
    assert len(collector.requests) == 3
    assert len({r["body"] for r in collector.requests}) == 1
    assert collector.held() == {t.ref for t in threats}


def test_a_collector_that_stays_busy_fails_the_commit_naming_adapter_and_url(collector):
    collector.faults = [503] * 10
    with pytest.raises(AdapterError) as failure:
        deliver(hec(collector.url, max_retries=2), sample_threats())
    assert len(collector.requests) == 3
    message = str(failure.value)
    assert message.startswith("adapter splunk_hec: ")
    assert f"{collector.url}/services/collector/event answered HTTP 503 (Server is busy, code 9)" in message
    assert "3 attempts" in message


def test_with_use_ack_the_commit_returns_once_the_collector_confirmed_every_batch_as_indexed(collector):
    collector.acks, collector.unconfirmed_polls = True, 2
    threats = sample_threats(malware=6, phish=3)
    adapter = hec(collector.url, batch_size=4, use_ack=True)
    adapter.open()
    adapter.deliver(threats)
    assert collector.confirmed == set()

    adapter.commit()
    adapter.close()

    [ids] = collector.ack_ids.values()
    assert ids == [0, 1, 2] and collector.confirmed == {0, 1, 2}
    assert collector.ack_polls == 3
    paths = [r["path"] for r in collector.requests]
    assert paths == ["/services/collector/event"] * 3 + ["/services/collector/ack"] * 3
    assert collector.held() == {t.ref for t in threats}


def test_batches_the_collector_never_confirms_fail_the_commit_after_ack_timeout(collector):
    collector.acks, collector.never_confirm = True, True

    with pytest.raises(AdapterError, match=r"^adapter splunk_hec: http://localhost:\d+/services/collector/ack did not "
                                           r"confirm 1 batches as indexed within 1 s \(use_ack\); they will be sent"):
        deliver(hec(collector.url, use_ack=True, ack_timeout=1.0), sample_threats())
    assert collector.ack_polls > 1


def test_use_ack_with_a_token_that_has_acknowledgement_off_is_a_clear_error(collector):
    with pytest.raises(AdapterError, match="accepted events without an ackId: turn indexer acknowledgement on"):
        deliver(hec(collector.url, use_ack=True), sample_threats())


def test_an_unconfirmed_batch_fails_the_run_and_keeps_the_position(tmp_path, simulator, collector):
    collector.acks, collector.never_confirm = True, True
    config = write_config(tmp_path, simulator.url, integration_splunk_hec={
        "use": "True", "url": collector.url, "token": TOKEN, "use_ack": "True", "ack_timeout": "1",
    })

    result = run_cli(config)

    assert result.returncode == 74
    assert "did not confirm" in result.stderr and TOKEN not in result.stderr
    assert config_module.read(str(config))["pm_api"]["position"] == ""


def test_a_refused_token_fails_at_once_without_showing_the_token(tmp_path, collector, caplog):
    caplog.set_level(logging.DEBUG)
    adapter = hec(collector.url, token="wrong-" + TOKEN)
    with pytest.raises(AdapterError) as failure:
        deliver(adapter, sample_threats())
    assert len(collector.requests) == 1
    assert "HTTP 403 (Invalid token, code 4): check [integration_splunk_hec] token" in str(failure.value)
    assert TOKEN not in str(failure.value)
    assert TOKEN not in caplog.text


def test_a_refused_connection_names_the_destination(broken_adapter):
    with pytest.raises(AdapterError, match=r"cannot reach http://127\.0\.0\.1:\d+/services/collector/event: "
                                           r"\[Errno 111\] Connection refused \(1 attempts\)"):
        deliver(broken_adapter, sample_threats())


def test_tls_is_verified_by_default_so_an_unknown_ca_is_refused(tls_collector):
    refused = r"TLS failure with https://localhost:\d+/services/collector/event: certificate verify failed"
    with pytest.raises(AdapterError, match=refused):
        deliver(hec(tls_collector.url), sample_threats())
    assert tls_collector.events == []


def test_tls_succeeds_with_the_collectors_ca_bundle(ca_file, tls_collector):
    threats = sample_threats()
    deliver(hec(tls_collector.url, ca_bundle=str(ca_file)), threats)
    assert tls_collector.held() == {t.ref for t in threats}


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_tls_verification_can_be_turned_off(tls_collector):
    threats = sample_threats()
    deliver(hec(tls_collector.url, ssl_verify=False), threats)
    assert tls_collector.held() == {t.ref for t in threats}


def test_bad_settings_are_config_errors_naming_section_and_key(tmp_path):
    config = write_config(tmp_path, "http://127.0.0.1:9/apiv1", integration_splunk_hec={
        "use": "True", "url": "splunk:8088", "batch_size": "0", "ca_bundle": "missing.pem",
    })
    with pytest.raises(ConfigError) as failure:
        config_module.load(str(config))
    problems = [p for p in failure.value.problems if p.startswith("[integration_splunk_hec]")]
    assert problems == [
        "[integration_splunk_hec] url: must be a https or http URL with a host, not 'splunk:8088'",
        "[integration_splunk_hec] token: is required",
        "[integration_splunk_hec] batch_size: must be a whole number from 1 to 10000, not 0",
    ]


def test_a_missing_ca_bundle_is_a_config_error(tmp_path):
    config = write_config(tmp_path, "http://127.0.0.1:9/apiv1", integration_splunk_hec={
        "use": "True", "url": "https://splunk.example:8088", "token": TOKEN, "ca_bundle": "missing.pem",
    })
    with pytest.raises(ConfigError) as failure:
        config_module.load(str(config))
    assert failure.value.problems == [f"[integration_splunk_hec] ca_bundle: {tmp_path / 'missing.pem'} is not a "
                                      "readable file"]


def test_a_sync_sends_every_threat_then_deletions_and_never_logs_the_token(tmp_path, simulator, dataset, collector):
    config = write_config(tmp_path, simulator.url, local_log={"log_level": "debug"}, integration_splunk_hec={
        "use": "True", "url": collector.url, "token": TOKEN, "indicator_events": "True", "batch_size": "50",
    })
    first = run_cli(config)
    assert first.returncode == 0, first.stderr
    live = {ThreatRef(kind, tid) for kind, tid in dataset.live_ids()}
    assert collector.held() == live

    deleted = {ThreatRef(kind, tid) for kind, tid in dataset.delete(3)}
    second = run_cli(config)
    assert second.returncode == 0, second.stderr
    assert collector.held() == live - deleted
    log = Path(tmp_path / "phishme_intel.log").read_text()
    assert "splunk_hec" in log
    assert TOKEN not in log


def test_a_failing_collector_fails_the_run_and_keeps_the_position(tmp_path, simulator):
    config = write_config(tmp_path, simulator.url, integration_splunk_hec={
        "use": "True", "url": f"http://127.0.0.1:{closed_port()}", "token": TOKEN, "max_retries": "0",
    })
    result = run_cli(config)
    assert result.returncode == 74
    assert "adapter splunk_hec: cannot reach http://127.0.0.1:" in result.stderr
    assert TOKEN not in result.stderr
    assert config_module.read(str(config))["pm_api"]["position"] == ""
