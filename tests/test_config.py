"""config.ini validation: every problem reported at once, each naming section and key."""

from __future__ import annotations

import datetime as dt

import pytest
from support import write_config

from phishme_intel import config as config_module
from phishme_intel.errors import ConfigError

URL = "http://127.0.0.1:9/apiv1"

BAD = [
    ({"pm_api": {"base_url": "ftp://example.com"}}, "[pm_api] base_url: must be a https or http URL with a host"),
    ({"pm_api": {"base_url": "http://:80"}}, "[pm_api] base_url: must be a https or http URL with a host"),
    ({"pm_api": {"user": ""}}, "[pm_api] user: is required"),
    ({"pm_api": {"pass": ""}}, "[pm_api] pass: is required"),
    ({"pm_api": {"init_date": "the day before"}}, "[pm_api] init_date: is not a date in a form that cannot be misread"),
    ({"pm_api": {"init_date": "2999-01-01"}}, "[pm_api] init_date: is in the future"),
    ({"pm_api": {"ssl_verify": "maybe"}}, "[pm_api] ssl_verify: must be True or False, not 'maybe'"),
    ({"pm_api": {"ca_bundle": "/no/such/ca.pem"}}, "[pm_api] ca_bundle: /no/such/ca.pem is not a readable file"),
    ({"pm_api": {"position": "not-a-uuid"}}, "[pm_api] position: must be a UUID"),
    ({"pm_api": {"results_per_page": "0"}}, "[pm_api] results_per_page: must be a whole number from 1 to 100, not 0"),
    ({"pm_api": {"results_per_page": "ten"}}, "[pm_api] results_per_page: must be a whole number from 1 to 100"),
    ({"pm_api": {"max_retries": "-1"}}, "[pm_api] max_retries: must be a whole number from 0 to 20, not -1"),
    ({"pm_api": {"timeout": "0"}}, "[pm_api] timeout: must be a number from 1 to 600, not 0"),
    ({"pm_api": {"concurrency": "64"}}, "[pm_api] concurrency: must be a whole number from 1 to 16, not 64"),
    ({"pm_api": {"backfill_done": "100"}}, "[pm_api] backfill_done: is set without backfill_until"),
    ({"pm_product": {"intelligence": "False", "brand_intelligence": "False"}}, "[pm_product]: intelligence and"),
    ({"local_log": {"log_level": "chatty"}}, "[local_log] log_level: must be one of debug, info, warning, error"),
    ({"local_log": {"log_file": "/no/such/folder/x.log"}}, "[local_log] log_file: the folder /no/such/folder does"),
    ({"local_log": {"log_file": "/tmp"}}, "[local_log] log_file: /tmp is a directory, not a file"),
    ({"local_file_lock": {"lock_file": "/no/such/folder/x.lock"}}, "[local_file_lock] lock_file: the folder"),
    ({"local_proxy": {"use": "True"}}, "[local_proxy] use: is True but neither http nor https names a proxy"),
    ({"local_proxy": {"use": "True", "https": "proxy:3128"}}, "[local_proxy] https: must be a http or https URL"),
    ({"local_proxy": {"use": "True", "https": "http://p:3128", "auth_basic_use": "True"}},
     "[local_proxy] auth_basic_user: is required when auth_basic_use is True"),
    ({"integration_nosuch": {"use": "True"}}, "[integration_nosuch] use: no adapter named 'nosuch' is installed"),
    ({"integration_sqlite": {"path": "/no/such/folder/db.sqlite3"}}, "[integration_sqlite] path: the folder"),
]


@pytest.mark.parametrize(("sections", "message"), BAD, ids=[m.split(":")[0] for _, m in BAD])
def test_a_bad_value_is_reported_with_its_section_and_key(tmp_path, sections, message):
    path = write_config(tmp_path, URL, **sections)
    before = path.read_bytes()

    with pytest.raises(ConfigError) as failure:
        config_module.load(str(path))

    assert any(problem.startswith(message) for problem in failure.value.problems), failure.value.problems
    assert path.read_bytes() == before


def test_every_problem_is_reported_at_once(tmp_path):
    path = write_config(tmp_path, URL, pm_api={"timeout": "x", "concurrency": "0"}, local_log={"log_level": "?"})

    with pytest.raises(ConfigError) as failure:
        config_module.load(str(path))

    assert len(failure.value.problems) == 3
    assert str(failure.value).count("\n  - ") == 3


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "[pm_api]: the section is missing"),
        (b"user = me\n", "line 1: a key before any [section] header"),
        (b"[pm_api]\nuser = a\nuser = b\n", "[pm_api] user: the key appears twice (line 3)"),
        (b"[pm_api]\n[pm_api]\n", "[pm_api]: the section appears twice (line 2)"),
        (b"[pm_api]\nuser = \xff\xfe\n", "the file is not UTF-8 text (byte 0xff at offset 16)"),
    ],
)
def test_a_file_that_is_not_a_valid_ini_is_reported(tmp_path, content, message):
    path = tmp_path / "config.ini"
    path.write_bytes(content)

    with pytest.raises(ConfigError) as failure:
        config_module.load(str(path))

    assert failure.value.problems[0].startswith(message), failure.value.problems


def test_unknown_keys_and_sections_are_warnings_not_errors(tmp_path):
    path = write_config(tmp_path, URL, pm_api={"update_search_limit": "500"}, pm_format={"stix": "True"})

    config = config_module.load(str(path))

    assert "[pm_api] update_search_limit: unknown key, ignored" in config.warnings
    assert any(w.startswith("[pm_format] stix: a phishme-intelligence 4.x setting") for w in config.warnings)


def test_relative_paths_are_resolved_against_the_config_folder(tmp_path):
    config = config_module.load(str(write_config(tmp_path, URL)))

    assert config.log_file == str(tmp_path / "phishme_intel.log")
    assert config.lock_file == str(tmp_path / "phishme_intel.lock")
    assert config.adapters["sqlite"][1]["path"] == str(tmp_path / "phishme_intel.sqlite3")


@pytest.mark.parametrize(("written", "understood"), [
    ("2026-01-02", "2026-01-02T00:00:00+00:00"),
    ("2026-01-02T03:04:05Z", "2026-01-02T03:04:05+00:00"),
    ("2026-01-02 03:04+02:00", "2026-01-02T01:04:00+00:00"),
    ("2026-01-02T03:04:05.250-0330", "2026-01-02T06:34:05.250000+00:00"),
    ("2 January 2026", "2026-01-02T00:00:00+00:00"),
    ("Jan 2, 2026", "2026-01-02T00:00:00+00:00"),
])
def test_init_date_is_read_as_iso_8601_or_with_the_month_by_name(tmp_path, written, understood):
    config = config_module.load(str(write_config(tmp_path, URL, pm_api={"init_date": written})))

    assert config.api.init_date.astimezone(dt.timezone.utc).isoformat() == understood


def test_a_config_readable_by_others_gives_a_chmod_warning(tmp_path):
    path = write_config(tmp_path, URL)
    path.chmod(0o644)

    config = config_module.load(str(path))

    assert any("chmod 600" in warning for warning in config.warnings)


def test_the_password_is_not_in_the_config_repr(tmp_path):
    config = config_module.load(str(write_config(tmp_path, URL)))

    assert config.api.password not in repr(config)
