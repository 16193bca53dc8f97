"""A broken config.ini: one readable message naming section and key, exit 78, nothing touched.

Each case breaks one thing in a config.ini made from config.ini.example and runs the real
CLI. It must exit 78 and print exactly one problem, starting with the words the table
expects (the section and key, then what is wrong), without a traceback; the folder must
be left exactly as it was: config.ini byte for byte with its modification time, and no
log, lock or database file created. Cases that need file permissions to bite run the CLI
without root's power to override them. A stored position that is not a UUID never reaches
a request (the simulator sees none).
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from configupdater import ConfigUpdater
from support import Unprivileged, run_cli, write_config

URL = "http://127.0.0.1:9/apiv1"

# (id, sections to set, (section, key) pairs to remove, expected start of the one problem)
VALUES = [
    ("pm_api-missing", {}, [("pm_api", None)], "[pm_api]: the section is missing"),
    ("user-missing", {}, [("pm_api", "user")], "[pm_api] user: is required"),
    ("pass-missing", {}, [("pm_api", "pass")], "[pm_api] pass: is required"),
    ("init_date-missing", {}, [("pm_api", "init_date")], "[pm_api] init_date: is required"),
    ("user-blank", {"pm_api": {"user": "   "}}, [], "[pm_api] user: is required"),
    ("base_url-ftp", {"pm_api": {"base_url": "ftp://www.threathq.com/apiv1"}}, [], "[pm_api] base_url: must be a"),
    ("base_url-no-scheme", {"pm_api": {"base_url": "www.threathq.com/apiv1"}}, [], "[pm_api] base_url: must be a"),
    ("base_url-bad-port", {"pm_api": {"base_url": "https://www.threathq.com:99999/apiv1"}}, [],
     "[pm_api] base_url: is not a valid URL"),
    ("init_date-unparseable", {"pm_api": {"init_date": "last tuesday-ish"}}, [],
     "[pm_api] init_date: is not a date in a form that cannot be misread: 'last tuesday-ish'; write 2026-10-01, "
     "2026-10-01T08:00:00Z, 2026-10-01 10:00+02:00 or 1 October 2026"),
    ("init_date-impossible-day", {"pm_api": {"init_date": "2026-02-30"}}, [],
     "[pm_api] init_date: is not a valid date (day is out of range for month): '2026-02-30'"),
    ("init_date-overflow", {"pm_api": {"init_date": "99999999999999999999"}}, [],
     "[pm_api] init_date: is not a date in a form that cannot be misread"),
    ("init_date-day-dot-month", {"pm_api": {"init_date": "01.10.2026"}}, [],
     "[pm_api] init_date: is ambiguous (is it day.month or month.day?): '01.10.2026'; write 2026-10-01,"),
    ("init_date-month-slash-day", {"pm_api": {"init_date": "10/01/2026"}}, [],
     "[pm_api] init_date: is ambiguous (is it day.month or month.day?): '10/01/2026'"),
    ("init_date-zone-name", {"pm_api": {"init_date": "2024-01-01 10:00 EST"}}, [],
     "[pm_api] init_date: names a time zone by abbreviation, which several zones share: '2024-01-01 10:00 EST'"),
    ("init_date-day-only", {"pm_api": {"init_date": "10"}}, [],
     "[pm_api] init_date: is not a date in a form that cannot be misread: '10'"),
    ("init_date-month-only", {"pm_api": {"init_date": "October 2024"}}, [],
     "[pm_api] init_date: is not a whole date: 'October 2024'"),
    ("init_date-two-digit-year", {"pm_api": {"init_date": "1 Oct 24"}}, [],
     "[pm_api] init_date: is not a date in a form that cannot be misread: '1 Oct 24'"),
    ("init_date-time-without-zone", {"pm_api": {"init_date": "2024-01-01T10:00"}}, [],
     "[pm_api] init_date: gives a time without a time zone: '2024-01-01T10:00'; add Z (UTC) or an offset"),
    ("init_date-future", {"pm_api": {"init_date": "2999-01-01"}}, [], "[pm_api] init_date: is in the future"),
    ("init_date-before-2000", {"pm_api": {"init_date": "1999-12-31"}}, [],
     "[pm_api] init_date: is before the year 2000"),
    ("ssl_verify-word", {"pm_api": {"ssl_verify": "sometimes"}}, [], "[pm_api] ssl_verify: must be True or False"),
    ("position-not-uuid", {"pm_api": {"position": "latest"}}, [], "[pm_api] position: must be a UUID"),
    ("backfill_until-text", {"pm_api": {"backfill_until": "yesterday"}}, [],
     "[pm_api] backfill_until: must be a whole"),
    ("backfill_until-negative", {"pm_api": {"backfill_until": "-5"}}, [], "[pm_api] backfill_until: must be a whole"),
    ("backfill_done-alone", {"pm_api": {"backfill_done": "1700000000"}}, [],
     "[pm_api] backfill_done: is set without backfill_until"),
    ("results_per_page-word", {"pm_api": {"results_per_page": "lots"}}, [],
     "[pm_api] results_per_page: must be a whole number from 1 to 100, not 'lots'"),
    ("results_per_page-fraction", {"pm_api": {"results_per_page": "2.5"}}, [],
     "[pm_api] results_per_page: must be a whole number from 1 to 100, not '2.5'"),
    ("results_per_page-101", {"pm_api": {"results_per_page": "101"}}, [],
     "[pm_api] results_per_page: must be a whole number from 1 to 100, not 101"),
    ("window_hours-0", {"pm_api": {"window_hours": "0"}}, [], "[pm_api] window_hours: must be a whole number from 1"),
    ("window_hours-huge", {"pm_api": {"window_hours": "745"}}, [], "[pm_api] window_hours: must be a whole number"),
    ("max_retries-21", {"pm_api": {"max_retries": "21"}}, [], "[pm_api] max_retries: must be a whole number from 0"),
    ("retry_backoff-word", {"pm_api": {"retry_backoff": "fast"}}, [], "[pm_api] retry_backoff: must be a number"),
    ("retry_backoff-61", {"pm_api": {"retry_backoff": "61"}}, [], "[pm_api] retry_backoff: must be a number from 0"),
    ("timeout-half", {"pm_api": {"timeout": "0.5"}}, [], "[pm_api] timeout: must be a number from 1 to 600"),
    ("timeout-nan", {"pm_api": {"timeout": "nan"}}, [], "[pm_api] timeout: must be a number from 1 to 600"),
    ("timeout-inf", {"pm_api": {"timeout": "inf"}}, [], "[pm_api] timeout: must be a number from 1 to 600"),
    ("concurrency-0", {"pm_api": {"concurrency": "0"}}, [], "[pm_api] concurrency: must be a whole number from 1"),
    ("max_requests_per_second-negative", {"pm_api": {"max_requests_per_second": "-1"}}, [],
     "[pm_api] max_requests_per_second: must be a number"),
    ("expired_threat_days-negative", {"pm_api": {"expired_threat_days": "-7"}}, [],
     "[pm_api] expired_threat_days: must be a whole number"),
    ("intelligence-word", {"pm_product": {"intelligence": "please"}}, [],
     "[pm_product] intelligence: must be True or False"),
    ("products-both-off", {"pm_product": {"intelligence": "False", "brand_intelligence": "no"}}, [],
     "[pm_product]: intelligence and brand_intelligence are both False"),
    ("log_level-word", {"local_log": {"log_level": "verbose"}}, [], "[local_log] log_level: must be one of"),
    ("log_file-missing-folder", {"local_log": {"log_file": "no-such-folder/run.log"}}, [],
     "[local_log] log_file: the folder"),
    ("lock-use-word", {"local_file_lock": {"use": "maybe"}}, [], "[local_file_lock] use: must be True or False"),
    ("lock_file-missing-folder", {"local_file_lock": {"lock_file": "no-such-folder/x.lock"}}, [],
     "[local_file_lock] lock_file: the folder"),
    ("proxy-use-without-url", {"local_proxy": {"use": "True"}}, [],
     "[local_proxy] use: is True but neither http nor https names a proxy"),
    ("proxy-no-scheme", {"local_proxy": {"use": "True", "https": "proxy.example.com:3128"}}, [],
     "[local_proxy] https: must be a http or https URL"),
    ("proxy-socks", {"local_proxy": {"use": "True", "http": "socks5://proxy.example.com:1080"}}, [],
     "[local_proxy] http: must be a http or https URL"),
    ("proxy-bad-port", {"local_proxy": {"use": "True", "https": "http://proxy.example.com:port"}}, [],
     "[local_proxy] https: is not a valid URL"),
    ("proxy-no-host", {"local_proxy": {"use": "True", "https": "http://:3128"}}, [],
     "[local_proxy] https: must be a http or https URL with a host"),
    ("proxy-auth-without-password",
     {"local_proxy": {"use": "True", "https": "http://proxy.example.com:3128", "auth_basic_use": "True",
                      "auth_basic_user": "me"}}, [],
     "[local_proxy] auth_basic_pass: is required when auth_basic_use is True"),
    ("proxy-auth_basic_use-word", {"local_proxy": {"auth_basic_use": "sure"}}, [],
     "[local_proxy] auth_basic_use: must be True or False"),
    ("adapter-unknown", {"integration_nosuch": {"use": "True"}}, [],
     "[integration_nosuch] use: no adapter named 'nosuch' is installed"),
    ("sqlite-use-word", {"integration_sqlite": {"use": "perhaps"}}, [],
     "[integration_sqlite] use: must be True or False"),
    ("no-adapter-enabled", {"integration_sqlite": {"use": "False"}}, [],
     "[integration_sqlite] use, [integration_postgresql] use, [integration_stix2] use, [integration_splunk_hec] use, "
     "[integration_json_files] use, [integration_blocklists] use, [integration_cef_syslog] use: "
     "no adapter is enabled"),
    ("sqlite-path-missing-folder", {"integration_sqlite": {"path": "no-such-folder/store.sqlite3"}}, [],
     "[integration_sqlite] path: the folder"),
    ("splunk_hec-without-url", {"integration_splunk_hec": {"use": "True", "token": "t-0k3n"}}, [],
     "[integration_splunk_hec] url: is required"),
    ("splunk_hec-url-not-http", {"integration_splunk_hec": {"use": "True", "url": "splunk:8088", "token": "t"}}, [],
     "[integration_splunk_hec] url: must be a https or http URL"),
]


def config_with(folder: Path, sections: dict[str, dict[str, str]], removed: list[tuple[str, str | None]]) -> Path:
    """The test config with ``sections`` set, then each (section, key) removed (key None: the section)."""
    path = write_config(folder, URL, **sections)
    updater = ConfigUpdater()
    updater.read(path)
    for section, key in removed:
        if key is None:
            updater.remove_section(section)
        else:
            updater.remove_option(section, key)
    updater.update_file()
    return path


def snapshot(folder: Path) -> dict[str, tuple[bytes | None, int]]:
    """Every entry under ``folder``: its bytes (None for a folder) and modification time."""
    return {
        str(entry.relative_to(folder)): (None if entry.is_dir() else entry.read_bytes(), entry.lstat().st_mtime_ns)
        for entry in sorted(folder.rglob("*"))
        if not entry.is_symlink() or entry.exists()
    }


def assert_one_problem(result: subprocess.CompletedProcess[str], config: Path, expected: str) -> None:
    """Exit 78 and, on stderr, the config's path and exactly one problem that starts with ``expected``."""
    assert result.returncode == 78, result.stderr
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    header, *problems = result.stderr.splitlines()
    assert header == f"phishme-intel: invalid configuration in {config}:"
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"  - {expected}"), problems[0]


@pytest.mark.parametrize(
    ("sections", "removed", "expected"), [case[1:] for case in VALUES], ids=[case[0] for case in VALUES]
)
def test_a_bad_value_is_one_message_naming_section_and_key(tmp_path, sections, removed, expected):
    config = config_with(tmp_path, sections, removed)
    before = snapshot(tmp_path)

    result = run_cli(config)

    assert_one_problem(result, config, expected)
    assert snapshot(tmp_path) == before


def _directory_named_like(folder: Path, name: str) -> None:
    (folder / name).mkdir()


FILES: list[tuple[str, Callable[[Path], None], dict[str, dict[str, str]], str]] = [
    ("log_file-is-a-directory", lambda f: _directory_named_like(f, "logs"), {"local_log": {"log_file": "logs"}},
     "[local_log] log_file: {folder}/logs is a directory, not a file"),
    ("lock_file-is-a-directory", lambda f: _directory_named_like(f, "lock"),
     {"local_file_lock": {"lock_file": "lock"}}, "[local_file_lock] lock_file: {folder}/lock is a directory"),
    ("sqlite-path-is-a-directory", lambda f: _directory_named_like(f, "db"), {"integration_sqlite": {"path": "db"}},
     "[integration_sqlite] path: {folder}/db is a directory"),
    ("ca_bundle-missing", lambda f: None, {"pm_api": {"ca_bundle": "no-such-ca.pem"}},
     "[pm_api] ca_bundle: {folder}/no-such-ca.pem is not a readable file"),
    ("ca_bundle-is-a-directory", lambda f: _directory_named_like(f, "certs"), {"pm_api": {"ca_bundle": "certs"}},
     "[pm_api] ca_bundle: {folder}/certs is not a readable file"),
]


@pytest.mark.parametrize(
    ("prepare", "sections", "expected"), [case[1:] for case in FILES], ids=[case[0] for case in FILES]
)
def test_a_path_that_cannot_be_used_is_one_message_naming_section_and_key(tmp_path, prepare, sections, expected):
    prepare(tmp_path)
    config = config_with(tmp_path, sections, [])
    before = snapshot(tmp_path)

    result = run_cli(config)

    assert_one_problem(result, config, expected.format(folder=tmp_path))
    assert snapshot(tmp_path) == before


CONTENTS = [
    ("empty-file", b"", "[pm_api]: the section is missing"),
    ("only-comments", b"# phishme-intel\n; nothing else\n", "[pm_api]: the section is missing"),
    ("not-utf8", b"[pm_api]\nuser = caf\xe9\n", "the file is not UTF-8 text (byte 0xe9 at offset 19)"),
    ("utf16", "[pm_api]\nuser = me\n".encode("utf-16"), "the file is not UTF-8 text (byte 0xff at offset 0)"),
    ("binary", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "the file is not UTF-8 text (byte 0x89 at offset 0)"),
    ("duplicate-key", b"[pm_api]\nuser = a\npass = b\nuser = c\n", "[pm_api] user: the key appears twice (line 4)"),
    ("duplicate-section", b"[pm_api]\nuser = a\n[local_log]\n[pm_api]\n",
     "[pm_api]: the section appears twice (line 4)"),
    ("key-before-section", b"user = a\n[pm_api]\n", "line 1: a key before any [section] header"),
    ("not-key-value", b"[pm_api]\nuser = a\nthis line means nothing\n", "lines 3: not 'key = value' lines"),
    ("unclosed-section", b"[pm_api\nuser = a\n", "line 1: a key before any [section] header"),
]


@pytest.mark.parametrize(("content", "expected"), [case[1:] for case in CONTENTS], ids=[case[0] for case in CONTENTS])
def test_a_file_that_is_not_a_usable_ini_is_one_message(tmp_path, content, expected):
    config = tmp_path / "config.ini"
    config.write_bytes(content)
    config.chmod(0o600)
    before = snapshot(tmp_path)

    result = run_cli(config)

    assert_one_problem(result, config, expected)
    assert snapshot(tmp_path) == before


def test_a_config_path_that_is_a_directory_is_one_message(tmp_path):
    folder = tmp_path / "config.ini"
    folder.mkdir()

    assert_one_problem(run_cli(folder), folder, "the path is a directory, not a config file")


def test_a_missing_config_file_or_a_dangling_link_is_one_message(tmp_path):
    link = tmp_path / "config.ini"
    link.symlink_to(tmp_path / "gone.ini")

    assert_one_problem(run_cli(link), link, "cannot read the file: No such file or directory")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.ini"]


def test_a_config_path_through_a_file_is_one_message(tmp_path):
    (tmp_path / "not-a-folder").write_text("x")
    config = tmp_path / "not-a-folder" / "config.ini"

    assert_one_problem(run_cli(config), config, "cannot read the file: Not a directory")


def test_check_reports_a_bad_config_the_same_way(tmp_path):
    config = config_with(tmp_path, {"pm_api": {"timeout": "soon"}}, [])
    before = snapshot(tmp_path)

    result = run_cli(config, "--check")

    assert_one_problem(result, config, "[pm_api] timeout: must be a number from 1 to 600, not 'soon'")
    assert snapshot(tmp_path) == before


def _config_for(unprivileged: Unprivileged, **sections: dict[str, str]) -> Path:
    return config_with(unprivileged.folder, sections, [])


def _read_only_folder(unprivileged: Unprivileged, name: str) -> None:
    folder = unprivileged.folder / name
    folder.mkdir()
    folder.chmod(0o555)


@pytest.mark.parametrize(
    ("sections", "expected"),
    [
        ({"local_file_lock": {"lock_file": "locked/phishme_intel.lock"}},
         "[local_file_lock] lock_file: the folder {folder}/locked is not writable"),
        ({"local_log": {"log_file": "locked/phishme_intel.log"}},
         "[local_log] log_file: the folder {folder}/locked is not writable"),
        ({"integration_sqlite": {"path": "locked/phishme_intel.sqlite3"}},
         "[integration_sqlite] path: the folder {folder}/locked is not writable"),
    ],
    ids=["lock-folder", "log-folder", "sqlite-folder"],
)
def test_an_unwritable_folder_is_one_message_naming_section_and_key(unprivileged, sections, expected):
    _read_only_folder(unprivileged, "locked")
    config = _config_for(unprivileged, **sections)
    before = snapshot(unprivileged.folder)

    result = unprivileged.run(config)

    assert_one_problem(result, config, expected.format(folder=unprivileged.folder))
    assert snapshot(unprivileged.folder) == before


def test_an_unreadable_config_is_one_message(unprivileged):
    config = _config_for(unprivileged)
    before = snapshot(unprivileged.folder)
    config.chmod(0o000)

    result = unprivileged.run(config)

    config.chmod(0o600)
    assert_one_problem(result, config, "cannot read the file: Permission denied")
    assert snapshot(unprivileged.folder) == before


HOSTILE_POSITIONS = [
    "0b3c0c7e-8a4c-4a47-9c66-0d5e62d3a2b1&threatType=all",
    "0b3c0c7e-8a4c-4a47-9c66-0d5e62d3a2b1%26page%3D9",
    "../../feed/",
    "0b3c0c7e-8a4c-4a47-9c66-0d5e62d3a2b1\n  X-Injected: 1",
    "' OR 1=1 --",
    "0b3c0c7e8a4c4a479c660d5e62d3a2b1ffff",
]


@pytest.mark.parametrize("position", HOSTILE_POSITIONS)
def test_a_stored_position_is_checked_before_it_goes_into_a_request(tmp_path, simulator, position):
    config = write_config(tmp_path, simulator.url)
    config.write_text(config.read_text().replace("\nposition =\n", f"\nposition = {position}\n"))
    before = snapshot(tmp_path)

    result = run_cli(config)

    assert_one_problem(result, config, "[pm_api] position: must be a UUID")
    assert simulator.requests == []
    assert snapshot(tmp_path) == before


def test_a_config_that_enables_no_adapter_fails_before_any_request(tmp_path, simulator):
    config = config_with(tmp_path, {"integration_sqlite": {"use": "False"}}, [])
    before = snapshot(tmp_path)

    for command in ((), ("--check",), ("--dry-run",)):
        result = run_cli(config, *command)

        assert_one_problem(result, config, "[integration_sqlite] use, ")
    assert simulator.requests == []
    assert snapshot(tmp_path) == before
