"""CEF over syslog: the contract over UDP, TCP, TLS and a file, the vendor mapping, escaping and transports."""

from __future__ import annotations

import logging
import os
import ssl
import time

import pytest
import trustme
from configupdater import ConfigUpdater
from contract import AdapterContract, DiscardsUncommitted, deliver
from listeners import TcpListener, UdpListener, parse_cef, parse_syslog, refused_port
from support import run_cli, sample_threats, write_config

from phishme_intel.adapters._cef import Event, removal_event, threat_events
from phishme_intel.adapters._syslog import Headers, header
from phishme_intel.adapters.cef_syslog import CefSyslogAdapter
from phishme_intel.errors import AdapterError
from phishme_intel.files import PendingLines
from phishme_intel.models import MALWARE, PHISH, ThreatRef, parse_threat
from phishme_intel.options import parse_section

KINDS = {"Intelligence": MALWARE, "Brand Intelligence": PHISH}


def settings(base_dir, **raw):
    """The adapter's settings parsed from ``raw`` as config.ini would give them."""
    problems = []
    parsed = parse_section("integration_cef_syslog", raw, CefSyslogAdapter.options, problems, base_dir=str(base_dir))
    assert problems == []
    return parsed


def events_held(lines):
    """The threats a receiver holds after these messages: upserted and not removed since."""
    held = set()
    for line in lines:
        event = parse_cef(parse_syslog(line).message if line.startswith("<") else line)
        ref = ThreatRef(KINDS[event.product], int(event.extensions["externalId"]))
        if event.extensions.get("act") == "remove":
            held.discard(ref)
        else:
            held.add(ref)
    return held


def file_destination(tmp_path):
    """(settings, read) for events appended to a file."""
    path = tmp_path / "events.cef"
    return settings(tmp_path, transport="file", file=str(path)), lambda: (
        path.read_text().splitlines() if path.exists() else []
    )


@pytest.fixture(params=["udp", "tcp", "tls", "file"])
def destination(request, tmp_path, ca_file, server_tls):
    """(settings, read): an adapter destination of each transport, and a reader of what arrived."""
    kind = request.param
    if kind == "file":
        yield file_destination(tmp_path)
        return
    listener = UdpListener() if kind == "udp" else TcpListener(tls=server_tls if kind == "tls" else None)
    raw = {"transport": kind, "host": "localhost" if kind == "tls" else "127.0.0.1", "port": str(listener.port)}
    if kind == "tls":
        raw["ca_bundle"] = str(ca_file)
    yield settings(tmp_path, **raw), listener.messages
    listener.close()


@pytest.fixture
def make_adapter(destination):
    return lambda: CefSyslogAdapter(destination[0])


@pytest.fixture
def held(destination):
    return lambda: events_held(destination[1]())


@pytest.fixture(params=["tcp", "udp", "file"])
def broken_adapter(request, tmp_path):
    if request.param == "file":
        (tmp_path / "a-file").write_text("")
        return CefSyslogAdapter(settings(tmp_path, transport="file", file=str(tmp_path / "a-file" / "events.cef")))
    return CefSyslogAdapter(settings(tmp_path, transport=request.param, host="127.0.0.1", port=str(refused_port())))


class TestCefSyslogContract(AdapterContract):
    pass


class TestFileTransportDiscardsUncommittedEvents(DiscardsUncommitted):
    """Events leave over the network as they are delivered; to a file only at commit."""

    @pytest.fixture
    def destination(self, tmp_path):
        return file_destination(tmp_path)


def malware(**fields):
    raw = {
        "id": 4242, "threatType": "MALWARE", "label": "Invoice - Emotet", "firstPublished": 1_700_000_000_000,
        "lastPublished": 1_700_000_600_000, "threatDetailURL": "https://www.threathq.com/p42/search/default?m=4242",
        "reportURL": "https://www.threathq.com/api/l/activethreatreport/4242/html",
        "campaignBrandSet": [{"brand": {"id": 3, "text": "DHL"}, "totalCount": 1}],
        "blockSet": [], "executableSet": [],
    }
    return parse_threat({**raw, **fields})


def block(kind, data, impact="Major", role="C2"):
    family = {"familyName": "Emotet"}
    return {"blockType": kind, "impact": impact, "role": role, "data_1": data, "malwareFamily": family}


def test_cef_escapes_pipes_and_backslashes_in_the_header_and_equals_backslashes_newlines_in_values():
    event = Event("Intel|ligence", "sig\\1", "Name|x", 7, (("cs1", "a=b\\c\nd\re|f"), ("cs2", "plain value")))

    line = event.format("Co|fe\\nse")

    assert line == (
        r"CEF:0|Co\|fe\\nse|Intel\|ligence|1.0|sig\\1|Name\|x|7|cs1=a\=b\\c\nd\re|f cs2=plain value"
    )
    parsed = parse_cef(line)
    assert (parsed.vendor, parsed.product, parsed.signature, parsed.name) == ("Co|fe\\nse", "Intel|ligence", "sig\\1",
                                                                            "Name|x")
    assert parsed.extensions == {"cs1": "a=b\\c\nd\re|f", "cs2": "plain value"}


def test_control_characters_become_spaces_and_line_breaks_never_reach_the_line():
    line = Event("P", "s", "n\r\nx", 0, (("cs1", "tab\there\x00nul"),)).format("V\n")

    assert "\n" not in line and "\r" not in line and "\x00" not in line
    assert parse_cef(line).extensions == {"cs1": "tab here nul"}
    assert parse_cef(line).name == "n  x"


def test_malware_indicators_get_the_vendor_signatures_and_severities():
    threat = malware(
        blockSet=[
            block("URL", {"url": "http://evil.example.com/a?x=1", "host": "evil.example.com"}, "Major", "Payload"),
            block("Domain Name", "c2.example.net", "Moderate"),
            block("IPv4 Address", "192.0.2.7", "Minor"),
            block("Email", "drop@example.org", "None", "Exfil"),
        ],
        executableSet=[{"fileName": "inv.exe", "md5Hex": "a" * 32, "sha256Hex": "b" * 64, "severityLevel": "Major"},
                       {"fileName": "x.js", "md5Hex": "c" * 32}],
        subjectSet=[{"subject": "Your invoice", "totalCount": 3}],
    )

    events = [(e.product, e.signature, e.name, e.severity, dict(e.extensions)) for e in threat_events(threat)]

    value = {"watchlist_url": "cs4", "watchlist_domain": "cs4", "watchlist_email": "cs4", "watchlist_ip": "dst",
             "malicious_file": "fileHash"}
    assert [(p, s, n, sev, ext[value[s]]) for p, s, n, sev, ext in events] == [
        ("Intelligence", "watchlist_url", "Watchlist URL", 10, "http://evil.example.com/a?x=1"),
        ("Intelligence", "watchlist_domain", "Watchlist Domain", 7, "c2.example.net"),
        ("Intelligence", "watchlist_ip", "Watchlist IP", 4, "192.0.2.7"),
        ("Intelligence", "watchlist_email", "Watchlist Email", 0, "drop@example.org"),
        ("Intelligence", "malicious_file", "Malicious File", 10, "a" * 32),
        ("Intelligence", "malicious_file", "Malicious File", 10, "b" * 64),
        ("Intelligence", "malicious_file", "Malicious File", 10, "c" * 32),
    ]
    url = events[0][4]
    assert {key: url[key] for key in ("externalId", "deviceCustomDate1", "cat", "cs1", "cs2", "cs3", "cs5", "cs6")} == {
        "externalId": 4242, "deviceCustomDate1": 1_700_000_000_000, "cat": "Major", "cs1": "Emotet", "cs2": "DHL",
        "cs3": "Payload", "cs5": "https://www.threathq.com/p42/search/default?m=4242",
        "cs6": "https://www.threathq.com/api/l/activethreatreport/4242/html",
    }
    assert (url["cs1Label"], url["cs3Label"], url["cs4Label"]) == ("Malware Family", "Infrastructure Type", "URL")
    assert events[4][4]["fname"] == "inv.exe"


def test_phish_gives_one_phish_confirmed_event_per_url_with_its_host_and_the_ip_on_the_phishing_url():
    phishing = {"url": "https://login.bank.example/x.php", "host": "login.bank.example", "domain": "bank.example"}
    action = {"url": "https://drop.example.net/post", "host": "drop.example.net", "domain": "example.net"}
    threat = parse_threat({
        "id": 77, "threatType": "PHISH", "title": "Bank phish", "firstDate": 1_700_000_000_000,
        "lastDate": 1_700_000_000_000, "threatDetailURL": "https://www.threathq.com/p42/search/default?p=77",
        "brands": [{"id": 1, "text": "Bank"}], "ipDetail": {"ip": "203.0.113.9"}, "phishingURL_1": phishing,
        "actionURLs_1": [action], "reportedURLs_1": [phishing],
        "screenshot": {"url_1": {"url": "https://www.threathq.com/apiv1/ss/77.png"}},
        "kits": [{"files": [{"emails": [{"email": "Thief@Example.org"}]}]}],
    })

    events = [(e.product, e.signature, e.severity, dict(e.extensions)) for e in threat_events(threat)]

    assert [(p, s, sev, ext.get("cs4"), ext.get("dhost"), ext.get("cs3"), ext.get("dst"))
            for p, s, sev, ext in events] == [
        ("Brand Intelligence", "phish_confirmed", 10, phishing["url"], "login.bank.example", "bank.example",
         "203.0.113.9"),
        ("Brand Intelligence", "phish_confirmed", 10, action["url"], "drop.example.net", "example.net", None),
        ("Brand Intelligence", "watchlist_email", 10, "thief@example.org", None, None, None),
    ]
    assert {events[0][3][key] for key in ("cs2", "cs5", "cs6", "externalId")} == {
        "Bank", "https://www.threathq.com/p42/search/default?p=77", "https://www.threathq.com/apiv1/ss/77.png", 77,
    }


def test_withdrawal_is_a_removal_event_naming_product_and_threat():
    event = parse_cef(removal_event(ThreatRef(PHISH, 77)).format("Cofense"))

    assert (event.product, event.signature, event.name, event.severity) == (
        "Brand Intelligence", "threat_removed", "Threat Removed", 0)
    assert event.extensions == {"act": "remove", "externalId": "77"}


def test_subjects_and_senders_are_left_out_with_a_debug_line(tmp_path, caplog):
    threat = malware(subjectSet=[{"subject": "Hello"}], senderIpSet=[{"ip": "192.0.2.1"}])
    adapter = CefSyslogAdapter(settings(tmp_path, transport="file", file=str(tmp_path / "out.cef")))

    with caplog.at_level(logging.DEBUG, logger="phishme_intel.adapters.cef_syslog"):
        deliver(adapter, [threat])

    assert (tmp_path / "out.cef").read_text() == ""
    assert "malware 4242: 0 events; 2 subject and sender indicators have no CEF event" in caplog.text


def test_udp_sends_one_rfc5424_datagram_per_event(tmp_path):
    listener = UdpListener()
    threat = malware(blockSet=[block("Domain Name", "c2.example.net", "Moderate")])
    adapter = CefSyslogAdapter(settings(tmp_path, transport="udp", host="127.0.0.1", port=str(listener.port),
                                        hostname="sync01", facility="local4", vendor="PhishMe"))

    deliver(adapter, [threat])

    [message] = listener.messages()
    syslog = parse_syslog(message)
    assert (syslog.style, syslog.priority, syslog.hostname, syslog.app) == ("rfc5424", 20 * 8 + 4, "sync01",
                                                                           "phishme-intel")
    assert syslog.timestamp.endswith("Z") and syslog.procid.isdigit()
    assert syslog.message.startswith("CEF:0|PhishMe|Intelligence|1.0|watchlist_domain|Watchlist Domain|7|")
    listener.close()


def test_rfc3164_header_has_a_bsd_timestamp_and_a_tag(tmp_path):
    listener = UdpListener()
    adapter = CefSyslogAdapter(settings(tmp_path, transport="udp", host="127.0.0.1", port=str(listener.port),
                                        header="rfc3164", hostname="sync01"))

    deliver(adapter, withdrawn=[ThreatRef(MALWARE, 5)])

    [message] = listener.messages()
    syslog = parse_syslog(message)
    assert (syslog.style, syslog.priority, syslog.hostname, syslog.app) == ("rfc3164", 16 * 8 + 6, "sync01",
                                                                           "phishme-intel")
    assert time.strptime(syslog.timestamp, "%b %d %H:%M:%S")
    assert parse_cef(syslog.message).extensions["act"] == "remove"
    listener.close()


@pytest.mark.parametrize(("now", "stamp"), [
    (1_700_000_000.123456, "2023-11-14T22:13:20.123Z"),
    (1_700_000_000.9994999, "2023-11-14T22:13:20.999Z"),
    (1_700_000_000.9999996, "2023-11-14T22:13:21.000Z"),  # to the microsecond first, as datetime rounds
])
def test_rfc5424_timestamp_is_utc_cut_to_the_millisecond(now, stamp):
    assert header("rfc5424", 16, 6, "sync01", now) == f"<134>1 {stamp} sync01 phishme-intel {os.getpid()} - - "


@pytest.fixture
def utc(monkeypatch):
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.parametrize(("now", "stamp"), [(1_699_000_000.9, "Nov  3 08:26:40"), (1_700_000_000.0, "Nov 14 22:13:20")])
def test_rfc3164_timestamp_is_local_time_with_the_day_padded_by_a_space(utc, now, stamp):
    assert header("rfc3164", 16, 6, "sync01", now) == f"<134>{stamp} sync01 phishme-intel[{os.getpid()}]: "


def test_a_sender_stamps_each_message_with_its_moment_across_milliseconds_seconds_and_a_clock_set_back(utc):
    """One sender reuses the headers it made while the stamp stays the same: never beyond that."""
    sender = {style: Headers(style, 16, "sync01") for style in ("rfc5424", "rfc3164")}
    moments = [
        1_700_000_000.1231, 1_700_000_000.1239994, 1_700_000_000.1239996,  # the last rounds to .124000
        1_700_000_000.1245, 1_700_000_000.1232, 1_700_000_000.9994999, 1_700_000_000.9999996, 1_700_000_001.0,
        1_700_000_001.0005, 1_699_999_999.5,
    ]

    for moment in moments:
        for style, headers in sender.items():
            assert headers(3, moment) == header(style, 16, 3, "sync01", moment), (style, moment)
    assert [sender["rfc5424"](6, moment)[7:31] for moment in moments] == [
        "2023-11-14T22:13:20.123Z", "2023-11-14T22:13:20.123Z", "2023-11-14T22:13:20.124Z",
        "2023-11-14T22:13:20.124Z", "2023-11-14T22:13:20.123Z", "2023-11-14T22:13:20.999Z",
        "2023-11-14T22:13:21.000Z", "2023-11-14T22:13:21.000Z", "2023-11-14T22:13:21.000Z",
        "2023-11-14T22:13:19.500Z",
    ]


@pytest.mark.parametrize("framing", ["octet", "lf"])
def test_tcp_framing_delivers_every_message_intact_including_multibyte_text(tmp_path, framing):
    listener = TcpListener(framing=framing)
    url = {"url": "http://bücher.example/ä?q=1\\2", "host": "bücher.example"}
    threats = [malware(blockSet=[block("URL", url)]), *sample_threats(malware=2, phish=1)]
    adapter = CefSyslogAdapter(settings(tmp_path, transport="tcp", host="127.0.0.1", port=str(listener.port),
                                        framing=framing))

    deliver(adapter, threats)

    messages = listener.messages()
    assert len(messages) == sum(len(threat_events(t)) for t in threats) > 3
    assert parse_cef(parse_syslog(messages[0]).message).extensions["cs4"] == "http://xn--bcher-kva.example/ä?q=1\\2"
    assert len(listener.connections) == 1 and listener.errors == []
    listener.close()


def test_tls_with_a_client_certificate_reaches_a_receiver_that_requires_one(tmp_path, ca, ca_file, server_tls):
    ca.configure_trust(server_tls)
    server_tls.verify_mode = ssl.CERT_REQUIRED
    client = tmp_path / "client.pem"
    ca.issue_cert("sync01.example").private_key_and_cert_chain_pem.write_to_path(str(client))
    listener = TcpListener(tls=server_tls)
    adapter = CefSyslogAdapter(settings(tmp_path, transport="tls", host="localhost", port=str(listener.port),
                                        ca_bundle=str(ca_file), client_cert=str(client)))

    deliver(adapter, withdrawn=[ThreatRef(MALWARE, 1), ThreatRef(PHISH, 2)])

    assert len(listener.messages()) == 2 and listener.errors == []
    listener.close()


def test_tls_receiver_with_an_untrusted_certificate_is_a_clear_error(tmp_path, server_tls):
    listener = TcpListener(tls=server_tls)
    other_ca = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other_ca))
    adapter = CefSyslogAdapter(settings(tmp_path, transport="tls", host="localhost", port=str(listener.port),
                                        ca_bundle=str(other_ca)))

    with pytest.raises(AdapterError) as failure:
        deliver(adapter, sample_threats())

    assert str(failure.value).startswith(f"adapter cef_syslog: cannot open tls://localhost:{listener.port}: TLS: "
                                         "certificate verify failed")
    assert listener.messages() == []
    listener.close()


def test_reconnects_when_the_receiver_drops_the_connection_between_batches(tmp_path):
    listener = TcpListener()
    first, second = sample_threats(malware=2, phish=0), sample_threats(malware=0, phish=2)
    adapter = CefSyslogAdapter(settings(tmp_path, transport="tcp", host="127.0.0.1", port=str(listener.port)))
    adapter.open()
    adapter.deliver(first)
    adapter.commit()
    sent_first = sum(len(threat_events(t)) for t in first)
    listener.wait_for(sent_first)

    listener.drop_connections()
    adapter.deliver(second)
    adapter.commit()
    adapter.close()

    assert len(listener.messages()) == sent_first + sum(len(threat_events(t)) for t in second)
    assert [len(received) > 0 for received in listener.connections] == [True, True]


def test_commit_fails_when_the_receiver_closed_the_connection_after_the_last_event(tmp_path):
    listener = TcpListener()
    threats = sample_threats(malware=1, phish=0)
    adapter = CefSyslogAdapter(settings(tmp_path, transport="tcp", host="127.0.0.1", port=str(listener.port)))
    adapter.open()
    adapter.deliver(threats)
    listener.wait_for(len(threat_events(threats[0])))
    listener.drop_connections()

    with pytest.raises(AdapterError, match=f"tcp://127.0.0.1:{listener.port}: the receiver closed the connection"):
        adapter.commit()
    adapter.close()
    listener.close()


def test_a_connection_dropped_mid_batch_fails_the_commit_and_the_next_run_sends_every_event_again(tmp_path):
    listener = TcpListener()
    first, second = sample_threats(malware=3, phish=0), sample_threats(malware=0, phish=3, seed=4)
    expected = [event.format("Cofense") for threat in first + second for event in threat_events(threat)]
    raw = {"transport": "tcp", "host": "127.0.0.1", "port": str(listener.port), "header": "none"}
    adapter = CefSyslogAdapter(settings(tmp_path, **raw))
    adapter.open()
    adapter.deliver(first)
    listener.wait_for(sum(len(threat_events(t)) for t in first))

    listener.drop_connections()
    with pytest.raises(AdapterError, match=f"tcp://127.0.0.1:{listener.port}: .*they will be sent again"):
        adapter.deliver(second)
        adapter.commit()
    adapter.close()
    deliver(CefSyslogAdapter(settings(tmp_path, **raw)), first + second)

    received = listener.messages()
    assert set(expected) <= set(received)
    assert received[-len(expected):] == expected


def test_a_tls_connection_ends_with_close_notify(tmp_path, ca_file, server_tls):
    listener = TcpListener(tls=server_tls)
    adapter = CefSyslogAdapter(settings(tmp_path, transport="tls", host="localhost", port=str(listener.port),
                                        ca_bundle=str(ca_file)))

    deliver(adapter, sample_threats(malware=1, phish=1))

    assert listener.messages() and listener.errors == []
    listener.close()


def test_file_events_beyond_the_memory_limit_wait_in_a_temporary_file_and_arrive_whole(tmp_path):
    pending = PendingLines(limit=1000)
    lines = [f"event {n} {'x' * (n % 50)}".encode() for n in range(2000)]
    target = tmp_path / "out.cef"

    for line in lines:
        pending.add(line)
    pending.append_to(str(target))
    pending.append_to(str(target))

    assert target.read_bytes() == 2 * b"".join(line + b"\n" for line in lines)
    assert len(pending) == 2000


def test_max_eps_spaces_the_events(tmp_path):
    listener = UdpListener()
    refs = [ThreatRef(MALWARE, n) for n in range(11)]
    adapter = CefSyslogAdapter(settings(tmp_path, transport="udp", host="127.0.0.1", port=str(listener.port),
                                        max_eps="50"))

    started = time.monotonic()
    deliver(adapter, withdrawn=refs)
    elapsed = time.monotonic() - started

    assert len(listener.messages()) == 11
    assert elapsed >= 10 / 50, "10 intervals of 1/50 s"  # at least: a busy machine only adds to it
    listener.close()


def test_file_output_appends_whole_lines_only_when_committed(tmp_path):
    path = tmp_path / "events.cef"
    make = lambda: CefSyslogAdapter(settings(tmp_path, transport="file", file=str(path), header="none"))  # noqa: E731
    threats = sample_threats(malware=1, phish=1)

    deliver(make(), threats, commit=False)
    assert path.read_text() == ""
    deliver(make(), threats)
    deliver(make(), withdrawn=[threats[0].ref])

    lines = path.read_text().splitlines()
    assert len(lines) == sum(len(threat_events(t)) for t in threats) + 1
    assert all(line.startswith("CEF:0|Cofense|") for line in lines)
    assert events_held(lines) == {threats[1].ref}


def test_a_full_disk_is_a_clear_error_naming_the_file(tmp_path):
    adapter = CefSyslogAdapter(settings(tmp_path, transport="file", file="/dev/full"))

    with pytest.raises(AdapterError, match="adapter cef_syslog: cannot deliver to /dev/full: No space left on device"):
        deliver(adapter, sample_threats(malware=1, phish=0))


def test_a_udp_receiver_that_refuses_is_a_clear_error(tmp_path):
    port = refused_port()
    adapter = CefSyslogAdapter(settings(tmp_path, transport="udp", host="127.0.0.1", port=str(port)))

    with pytest.raises(AdapterError, match=f"udp://127.0.0.1:{port}: Connection refused"):
        deliver(adapter, sample_threats(malware=2, phish=0))


def test_invalid_settings_are_config_errors_with_the_others(tmp_path, simulator):
    config = write_config(tmp_path, simulator.url, pm_api={"window_hours": "0"}, integration_cef_syslog={
        "use": "True", "transport": "tls", "port": "99999", "client_key": "key.pem", "max_eps": "-1",
    })

    result = run_cli(config, "--check")

    assert result.returncode == 78
    for problem in ("[pm_api] window_hours:", "[integration_cef_syslog] port: must be a whole number from 1 to 65535",
                    "[integration_cef_syslog] max_eps: must be a number from 0"):
        assert problem in result.stderr
    assert "[integration_cef_syslog] host: is required when transport is tls" in result.stderr
    assert f"[integration_cef_syslog] client_key: {tmp_path / 'key.pem'} is not a readable file" in result.stderr


def test_a_run_sends_every_threat_and_an_unreachable_receiver_fails_it_without_moving_the_position(
    tmp_path, simulator, dataset,
):
    listener = TcpListener()
    config = write_config(tmp_path, simulator.url, integration_cef_syslog={
        "use": "True", "transport": "tcp", "host": "127.0.0.1", "port": str(listener.port),
    })

    assert run_cli(config).returncode == 0
    assert events_held(listener.messages()) == dataset.live_ids()
    dataset.delete(3)
    updater = ConfigUpdater()
    updater.read(config)
    position = updater["pm_api"]["position"].value
    updater["integration_cef_syslog"]["port"] = str(refused_port())
    config.write_text(str(updater))

    failed = run_cli(config)

    assert failed.returncode == 74
    assert "adapter cef_syslog: cannot open tcp://127.0.0.1:" in failed.stderr
    assert "Connection refused" in failed.stderr
    updater.read(config)
    assert updater["pm_api"]["position"].value == position
    listener.close()
