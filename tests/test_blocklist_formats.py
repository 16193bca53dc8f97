"""The blocklist formats, each loaded by its real consumer (Debian packages, .ci/system-packages).

BIND's ``named-checkzone`` reads the RPZ; a real ``unbound`` on 127.0.0.1 (every other name
refused, so it never recurses) answers NXDOMAIN for listed domains and their subdomains and
nothing else; ``nft`` checks and loads the set file and ``ipset`` restores its file inside
``unshare -Urn`` (a network namespace of their own: the host's tables are never touched);
``squid -k parse`` reads a config that loads both ACL files. Outside CI a missing tool or
missing root skips a test, saying which; in CI (``CI=true``) it fails.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import threading
from pathlib import Path

import dns.message
import dns.query
import dns.rcode
import pytest
from test_adapter_blocklists import malware, sync

from phishme_intel.adapters import _blocklist_formats as formats

EVERY_FORMAT = "plain, rpz, unbound, nftables, ipset, squid"
LONG = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 57]) + ".com"  # 251 characters: too long under an RPZ origin
BLOCKS = [
    ("Domain Name", "evil.example", "Major"),
    ("Domain Name", "cdn.evil.example", "Major"),  # covered by evil.example
    ("Domain Name", "*.wild.example", "Major"),
    ("Domain Name", "Bücher-Docs.example", "Major"),
    ("Domain Name", "*docs.glued.example", "Major"),  # not an indicator: never listed
    ("Domain Name", "*.com", "Major"),
    ("Domain Name", LONG, "Major"),
    ("IPv4 Address", "203.0.113.5", "Major"),
    ("IPv4 Address", "198.51.100.7", "Moderate"),
    ("IPv4 Address", "127.0.0.1", "Major"),
    ("IPv4 Address", "0.0.0.0", "Major"),
]


def needs(*tools: str, root: bool = False) -> None:
    """Skip (outside CI) or fail (in CI) when a tool is missing or root is needed."""
    missing = [tool for tool in tools if shutil.which(tool) is None]
    reason = f"needs {', '.join(missing)} (.ci/system-packages)" if missing else ""
    if root and os.geteuid() != 0:
        reason = reason or "needs root (unshare -Urn into a network namespace)"
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    sync(tmp_path, [malware(1, BLOCKS)], formats=EVERY_FORMAT, kinds="domain, ipv4")
    return tmp_path / "lists"


def isolated(script: str, *files: Path) -> subprocess.CompletedProcess[str]:
    """``sh -c script`` in new user and network namespaces: root there, with no access to the host's tables."""
    return subprocess.run(["unshare", "-Urn", "sh", "-euc", script, "sh", *map(str, files)],
                          capture_output=True, text=True, timeout=60)


def test_the_plain_lists_hold_the_canonical_values_and_nothing_that_blocks_nothing_or_everything(folder):
    assert (folder / "domain.txt").read_text().splitlines() == sorted([
        "evil.example", "cdn.evil.example", "*.wild.example", "xn--bcher-docs-9db.example", LONG.lower()])
    assert (folder / "ipv4.txt").read_text().splitlines() == ["198.51.100.7", "203.0.113.5"]


def test_the_rpz_is_a_zone_bind_loads_with_a_record_per_domain_and_its_subdomains(folder):
    needs("named-checkzone")
    zone = folder / "phishme_intel.rpz"

    checked = subprocess.run(["named-checkzone", formats.RPZ_ORIGIN, str(zone)], capture_output=True, text=True)

    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.splitlines()[-1] == "OK"
    records = [line for line in zone.read_text().splitlines() if " CNAME " in line]
    assert records == [
        "*.wild.example CNAME .", "evil.example CNAME .", "*.evil.example CNAME .",
        "xn--bcher-docs-9db.example CNAME .", "*.xn--bcher-docs-9db.example CNAME .",
    ]


def test_the_rpz_serial_stays_while_the_records_do_and_grows_when_they_change(tmp_path):
    first = formats.rpz(["evil.example"])
    assert formats.rpz(["evil.example"], first) == first
    changed = formats.rpz(["evil.example", "other.example"], first)
    serial = [int(text.split(b"(")[1].split()[0]) for text in (first, changed)]
    assert serial[1] > serial[0]


class Unbound:
    """A real unbound on 127.0.0.1 that includes ``include``; it drops to ``nobody`` and answers
    REFUSED for every name outside its local zones, so it never sends a query anywhere.

    The port is a free one when it is picked; if something takes it before unbound binds it
    (unbound says "Address already in use" and ends), unbound starts again on another.
    """

    def __init__(self, folder: Path, include: Path) -> None:
        for _attempt in range(5):
            if self._start(folder, include):
                return
            if not any("address already in use" in line.lower() for line in self.log):
                break
        raise AssertionError(f"unbound did not start: {self.log}")

    def _start(self, folder: Path, include: Path) -> bool:
        """Start unbound on a free port; True once it serves, False if it ended first."""
        self.port = _free_port()
        config = folder / "unbound.conf"
        config.write_text(
            f"server:\n    interface: 127.0.0.1\n    port: {self.port}\n    do-ip6: no\n    do-daemonize: no\n"
            "    use-syslog: no\n    logfile: \"\"\n    pidfile: \"\"\n    chroot: \"\"\n    username: \"nobody\"\n"
            f"    directory: \"{folder}\"\n    verbosity: 1\n    module-config: \"iterator\"\n"
            "    local-zone: \".\" refuse\n    do-not-query-localhost: yes\n"
            f"include: \"{include}\"\nremote-control:\n    control-enable: no\n")
        checked = subprocess.run(["unbound-checkconf", str(config)], capture_output=True, text=True)
        assert checked.returncode == 0, checked.stdout + checked.stderr
        self.process = subprocess.Popen(["unbound", "-d", "-c", str(config)], stderr=subprocess.PIPE, text=True)
        self.serving = False
        self.settled = threading.Event()  # serving, or ended
        self.log: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        if not self.settled.wait(30):
            self.close()
            raise AssertionError(f"unbound neither started nor ended: {self.log}")
        if not self.serving:
            self.process.wait(10)
        return self.serving

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.log.append(line)
            if "start of service" in line:
                self.serving = True
                self.settled.set()
        self.settled.set()

    def answer(self, name: str) -> str:
        reply = dns.query.udp(dns.message.make_query(name, "A"), "127.0.0.1", port=self.port, timeout=5)
        return dns.rcode.to_text(reply.rcode())

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(10)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_unbound_blocks_listed_domains_and_their_subdomains_and_nothing_else(folder):
    needs("unbound", "unbound-checkconf")
    server = Unbound(folder, folder / "unbound-local-zones.conf")
    try:
        answers = {name: server.answer(name) for name in [
            "evil.example", "deep.cdn.evil.example", "wild.example", "a.wild.example", "xn--bcher-docs-9db.example",
            "www.xn--bcher-docs-9db.example", LONG, "good.example", "notevil.example", "evil.example.org",
            "docs.glued.example", "com",
        ]}
    finally:
        server.close()

    blocked = {name for name, rcode in answers.items() if rcode == "NXDOMAIN"}
    assert blocked == {"evil.example", "deep.cdn.evil.example", "wild.example", "a.wild.example",
                       "xn--bcher-docs-9db.example", "www.xn--bcher-docs-9db.example", LONG}
    assert {answers[name] for name in answers if name not in blocked} == {"REFUSED"}


def test_nft_checks_and_loads_the_set_file_and_a_reload_replaces_the_set(folder, tmp_path):
    needs("nft", "unshare", root=True)
    first = folder / "ipv4.nft"
    second = tmp_path / "second.nft"
    second.write_bytes(formats.nftables(["192.0.2.1"]))
    empty = tmp_path / "empty.nft"
    empty.write_bytes(formats.nftables([]))

    result = isolated('nft -c -f "$1"; nft -f "$1"; nft -j list set inet phishme_intel blocklist_ipv4;'
                      'nft -f "$2"; nft -j list set inet phishme_intel blocklist_ipv4; nft -f "$3";'
                      'nft -j list set inet phishme_intel blocklist_ipv4', first, second, empty)

    assert result.returncode == 0, result.stderr
    loaded = [_nft_elements(line) for line in result.stdout.splitlines() if line.strip()]
    assert loaded == [["198.51.100.7", "203.0.113.5"], ["192.0.2.1"], []]


def _nft_elements(listing: str) -> list[str]:
    for item in json.loads(listing)["nftables"]:
        if "set" in item:
            return sorted(item["set"].get("elem", []))
    raise AssertionError(listing)


def test_ipset_restores_the_file_and_a_second_restore_swaps_the_set_whole(folder, tmp_path):
    needs("ipset", "unshare", root=True)
    second = tmp_path / "second.ipset"
    second.write_bytes(formats.ipset(["192.0.2.1"]))

    result = isolated('ipset restore -f "$1"; ipset list -o save phishme_intel_ipv4; echo ===;'
                      'ipset restore -f "$2"; ipset list -o save phishme_intel_ipv4; ipset list -n',
                      folder / "ipv4.ipset", second)

    assert result.returncode == 0, result.stderr
    before, after = result.stdout.split("===\n")
    assert sorted(line.split()[-1] for line in before.splitlines() if line.startswith("add ")) == \
        ["198.51.100.7", "203.0.113.5"]
    lines = after.splitlines()
    assert [line.split()[-1] for line in lines if line.startswith("add ")] == ["192.0.2.1"]
    assert lines[-1] == "phishme_intel_ipv4"  # the temporary set is gone


def test_squid_parses_a_config_that_loads_both_acl_files(folder, tmp_path):
    needs("squid")
    config = tmp_path / "squid.conf"
    config.write_text(
        f'acl phishme_domains dstdomain "{folder}/squid-dstdomain.acl"\n'
        f'acl phishme_addresses dst "{folder}/squid-dst.acl"\n'
        "http_access deny phishme_domains\nhttp_access deny phishme_addresses\nhttp_access deny all\n"
        "http_port 127.0.0.1:3128\n")

    parsed = subprocess.run(["squid", "-k", "parse", "-f", str(config)], capture_output=True, text=True, timeout=60)

    assert parsed.returncode == 0, parsed.stderr
    assert "ERROR" not in parsed.stderr and "WARNING" not in parsed.stderr, parsed.stderr
    assert (folder / "squid-dstdomain.acl").read_text().splitlines() == sorted([
        ".evil.example", f".{LONG}", ".wild.example", ".xn--bcher-docs-9db.example"])
    assert (folder / "squid-dst.acl").read_text().splitlines() == ["198.51.100.7", "203.0.113.5"]


def test_each_format_file_is_replaced_only_when_its_content_changes(tmp_path):
    sync(tmp_path, [malware(1, BLOCKS)], formats=EVERY_FORMAT, kinds="domain, ipv4")
    names = sorted(os.listdir(tmp_path / "lists"))
    before = {name: os.stat(tmp_path / "lists" / name).st_ino for name in names}

    sync(tmp_path, formats=EVERY_FORMAT, kinds="domain, ipv4")
    assert {name: os.stat(tmp_path / "lists" / name).st_ino for name in names} == before

    sync(tmp_path, [malware(2, [("IPv4 Address", "192.0.2.44", "Major")])], formats=EVERY_FORMAT, kinds="domain, ipv4")
    after = {name: os.stat(tmp_path / "lists" / name).st_ino for name in names}
    assert sorted(name for name in names if after[name] != before[name]) == [
        "ipv4.ipset", "ipv4.nft", "ipv4.txt", "squid-dst.acl"]
