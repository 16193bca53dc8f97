"""A config.ini written for the vendor's phishme-intelligence 4.x works as it is, and continues its position."""

from __future__ import annotations

import configparser

from support import PASSWORD, USER, run_cli, store

from phishme_intel import config as config_module
from phishme_intel.config import vendor4x

# The layout of the vendor's documented sample config.ini (phishme-intelligence 4.x).
VENDOR_CONFIG = """\
[pm_api]
base_url = {base_url}
user = {user}
pass = {password}
ssl_verify = True
init_date = 2016-01-01
position = {position}
results_per_page = 100
max_retries = 3
expired_threat_days = 0

[pm_jitter]
use = False
execution_frequency = 15
scheduler_offset =

[pm_product]
intelligence = True
brand_intelligence = True

[pm_format]
cef = False
json = True
stix = False

[local_proxy]
use = False
http =
https =
auth_basic_use = False
auth_basic_user =
auth_basic_pass =

[local_file_lock]
use = True
lock_file = {folder}/phishme.lock

[local_log]
log_level = info
log_file = {folder}/phishme.log

[local_sqlite]
use = False
db =
data_deduplication_use =
data_deduplication_hours =

[output_json]
use = True
append_file_use = False
append_file_location =
multiple_file_use = False
multiple_file_location =
multiple_file_split_by_date = True

[integration_raw_json]
use = True
append_file_use = False
append_file_location =
multiple_file_use = True
multiple_file_location = {folder}/json
multiple_file_split_by_date = True
"""
UNUSED_SECTIONS = ("pm_format", "local_sqlite", "output_json", "integration_raw_json")


def _vendor_config(folder, simulator, position):
    path = folder / "config.ini"
    path.write_text(
        VENDOR_CONFIG.format(base_url=simulator.url, user=USER, password=PASSWORD, position=position, folder=folder)
    )
    path.chmod(0o600)
    (folder / "phishme.lock").write_text("")  # the vendor library's lock file, left behind by a crash
    return path


def test_a_4x_config_continues_from_its_stored_position_without_a_new_backfill(tmp_path, simulator, dataset):
    config = _vendor_config(tmp_path, simulator, dataset.updates_end())
    deleted = set(dataset.delete(3))
    changed = set(dataset.republish(5)) | set(dataset.add(malware=2, phish=1))
    before = config.read_text().splitlines()

    result = run_cli(config)

    assert result.returncode == 0, result.stderr
    assert not [r for r in simulator.requests if "beginTimestamp" in r.params]
    held = store(tmp_path / "phishme_intel.sqlite3")
    assert held["threats"] == changed - deleted
    assert held["deleted"] == deleted
    after = config.read_text().splitlines()
    assert [(old, new) for old, new in zip(before, after, strict=True) if old != new] == [
        (f"position = {before[6].split(' = ')[1]}", f"position = {dataset.updates_end()}")
    ]


def test_every_4x_key_it_does_not_use_gives_one_warning_and_no_error(tmp_path, simulator, dataset):
    config = _vendor_config(tmp_path, simulator, dataset.updates_end())
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(config)

    warnings = config_module.load(str(config)).warnings

    expected = {(section, key) for section in UNUSED_SECTIONS for key in parser[section]}
    about = [(w[1:w.index("]")], w[w.index("]") + 2:w.index(":")]) for w in warnings]
    assert sorted(about) == sorted(expected)
    assert all("phishme-intelligence 4.x setting" in w for w in warnings)
    assert any("[output_json] use:" in w and "[integration_json_files]" in w for w in warnings)


def test_the_warnings_reach_the_log_once_each_per_run(tmp_path, simulator, dataset):
    config = _vendor_config(tmp_path, simulator, dataset.updates_end())

    assert run_cli(config).returncode == 0

    log = (tmp_path / "phishme.log").read_text()
    assert log.count("[pm_format] json: a phishme-intelligence 4.x setting") == 1
    assert log.count("phishme-intelligence 4.x setting") == 3 + 4 + 6 + 6  # the keys of the 4 unused sections


def test_check_prints_the_warnings_for_the_person_migrating(tmp_path, simulator, dataset):
    config = _vendor_config(tmp_path, simulator, dataset.updates_end())

    result = run_cli(config, "--check")

    assert result.returncode == 0
    assert "warning: [integration_raw_json] multiple_file_location: a phishme-intelligence 4.x setting" in result.stderr


def test_the_4x_log_level_critical_is_accepted(tmp_path, simulator, dataset):
    config = _vendor_config(tmp_path, simulator, dataset.updates_end())
    config.write_text(config.read_text().replace("log_level = info", "log_level = critical"))

    assert config_module.load(str(config)).log_level == "critical"


def test_a_4x_section_is_served_by_an_installed_adapter_of_the_same_name():
    assert vendor4x.replaced("integration_raw_json")
    assert vendor4x.replaced("pm_format")
    assert not vendor4x.replaced("integration_sqlite")
    assert not vendor4x.replaced("pm_api")
