"""Secrets outside config.ini: from an environment variable, a ``<key>_file``, or a systemd credential.

Each case runs the real CLI against the simulator. The secret works from wherever it was
given, ``--check`` says where it came from and never shows it, and a secret given in two
places, or a file that cannot be read, is one config problem (exit 78) naming the section,
the key and both places, with nothing written.
"""

from __future__ import annotations

from pathlib import Path

from configupdater import ConfigUpdater
from support import PASSWORD, USER, run_cli, write_config
from test_bad_config import assert_one_problem, snapshot


def config_without(folder: Path, url: str, *keys: str, **sections: dict[str, str]) -> Path:
    """The test config with ``[pm_api]`` ``keys`` removed and ``sections`` set."""
    path = write_config(folder, url, **sections)
    updater = ConfigUpdater()
    updater.read(path)
    for key in keys:
        updater.remove_option("pm_api", key)
    updater.update_file()
    return path


def secret_file(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text)
    path.chmod(mode)
    return path


def assert_checked_with(result, simulator, origins: list[str]) -> None:
    assert result.returncode == 0, result.stderr
    assert PASSWORD not in result.stdout + result.stderr
    assert simulator.requests, "the check never reached the simulator"
    for origin in origins:
        assert origin in result.stdout.splitlines(), result.stdout


def test_the_password_from_an_environment_variable(tmp_path, simulator):
    config = config_without(tmp_path, simulator.url, "pass")

    result = run_cli(config, "--check", env={"PHISHME_INTEL_PASS": PASSWORD})

    assert_checked_with(result, simulator, [
        "[pm_api] pass: from the environment variable PHISHME_INTEL_PASS",
        "[pm_api] user: from config.ini",
    ])


def test_user_and_password_from_the_environment(tmp_path, simulator):
    config = config_without(tmp_path, simulator.url, "user", "pass")

    result = run_cli(config, "--check", env={"PHISHME_INTEL_USER": USER, "PHISHME_INTEL_PASS": PASSWORD})

    assert_checked_with(result, simulator, ["[pm_api] user: from the environment variable PHISHME_INTEL_USER"])


def test_the_password_from_a_file_named_by_pass_file_relative_to_the_config(tmp_path, simulator):
    secret_file(tmp_path / "api-pass", PASSWORD + "\n")
    config = config_without(tmp_path, simulator.url, "pass", pm_api={"pass_file": "api-pass"})

    result = run_cli(config, "--check")

    assert_checked_with(result, simulator, [f"[pm_api] pass: from the file {tmp_path}/api-pass (pass_file)"])
    assert "readable by other users" not in result.stderr


def test_a_password_file_readable_by_others_gets_the_chmod_warning(tmp_path, simulator):
    secret_file(tmp_path / "api-pass", PASSWORD, mode=0o644)
    config = config_without(tmp_path, simulator.url, "pass", pm_api={"pass_file": "api-pass"})

    result = run_cli(config, "--check")

    assert result.returncode == 0, result.stderr
    assert (f"warning: {tmp_path}/api-pass is readable by other users and holds [pm_api] pass: "
            f"chmod 600 {tmp_path}/api-pass") in result.stderr.splitlines()


def test_the_password_from_a_systemd_credential(tmp_path, simulator):
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    secret_file(credentials / "PHISHME_INTEL_PASS", PASSWORD)
    config = config_without(tmp_path, simulator.url, "pass")

    result = run_cli(config, "--check", env={"CREDENTIALS_DIRECTORY": str(credentials)})

    assert_checked_with(result, simulator, ["[pm_api] pass: from the systemd credential PHISHME_INTEL_PASS"])


def test_a_password_given_twice_is_one_problem_naming_both_places(tmp_path, simulator):
    config = write_config(tmp_path, simulator.url)
    before = snapshot(tmp_path)

    result = run_cli(config, env={"PHISHME_INTEL_PASS": "another-" + PASSWORD})

    assert_one_problem(result, config, (
        "[pm_api] pass: is given twice, in config.ini and in the environment variable PHISHME_INTEL_PASS; keep one"
    ))
    assert PASSWORD not in result.stderr
    assert simulator.requests == []
    assert snapshot(tmp_path) == before


def test_a_password_in_a_file_and_a_credential_is_one_problem(tmp_path, simulator):
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    secret_file(credentials / "PHISHME_INTEL_PASS", PASSWORD)
    secret_file(tmp_path / "api-pass", PASSWORD)
    config = config_without(tmp_path, simulator.url, "pass", pm_api={"pass_file": "api-pass"})
    before = snapshot(tmp_path)

    result = run_cli(config, env={"CREDENTIALS_DIRECTORY": str(credentials)})

    assert_one_problem(result, config, (
        f"[pm_api] pass: is given twice, in the file {tmp_path}/api-pass (pass_file) and in the systemd "
        "credential PHISHME_INTEL_PASS; keep one"
    ))
    assert snapshot(tmp_path) == before


def test_a_missing_or_empty_password_file_is_one_problem(tmp_path, simulator):
    config = config_without(tmp_path, simulator.url, "pass", pm_api={"pass_file": "no-such-file"})
    before = snapshot(tmp_path)

    assert_one_problem(run_cli(config), config,
                       f"[pm_api] pass_file: cannot read {tmp_path}/no-such-file: No such file or directory")
    secret_file(tmp_path / "empty", "\n")
    config = config_without(tmp_path, simulator.url, "pass", pm_api={"pass_file": "empty"})
    before = snapshot(tmp_path)

    assert_one_problem(run_cli(config), config, f"[pm_api] pass_file: {tmp_path}/empty is empty")
    assert snapshot(tmp_path) == before
    assert simulator.requests == []


def test_an_adapters_token_from_the_environment_and_config_is_one_problem(tmp_path, simulator):
    hec = {"use": "True", "url": "http://127.0.0.1:9", "token": "t-0k3n-in-config"}
    config = write_config(tmp_path, simulator.url, integration_splunk_hec=hec)

    result = run_cli(config, env={"PHISHME_INTEL_SPLUNK_HEC_TOKEN": "t-0k3n-from-env"})

    assert_one_problem(result, config, (
        "[integration_splunk_hec] token: is given twice, in config.ini and in the environment variable "
        "PHISHME_INTEL_SPLUNK_HEC_TOKEN; keep one"
    ))
    assert "t-0k3n" not in result.stderr


def test_the_proxy_password_from_the_environment_fills_the_required_key(tmp_path, simulator):
    proxy = {"use": "True", "https": "http://127.0.0.1:9", "auth_basic_use": "True", "auth_basic_user": "me"}
    config = write_config(tmp_path, simulator.url, local_proxy=proxy)

    missing = run_cli(config, "--dry-run")
    given = run_cli(config, "--check", env={"PHISHME_INTEL_LOCAL_PROXY_AUTH_BASIC_PASS": "pr0xy-pw"})

    assert_one_problem(missing, config, "[local_proxy] auth_basic_pass: is required when auth_basic_use is True")
    assert "[local_proxy] auth_basic_pass: from the environment variable PHISHME_INTEL_LOCAL_PROXY_AUTH_BASIC_PASS" \
        in given.stdout.splitlines(), given.stdout + given.stderr
