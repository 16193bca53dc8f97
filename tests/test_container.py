"""The image: built from the repository's Dockerfile on a local Debian base, run with podman.

The base is made once per test session (``debootstrap``, ~1 min); the image build takes
~15 s and each container run a second or two. Containers use the host's network, so the
simulator they sync from listens on 127.0.0.1 as in every other test.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from podman import IMAGE_UID, Podman, pip_ca, require_podman
from support import http_get, run_cli, store, wait_until, write_config

from phishme_intel.simulator import Dataset


@pytest.fixture(scope="session")
def podman(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Podman]:
    require_podman()
    tool = Podman(tmp_path_factory.mktemp("podman"))
    yield tool
    tool.remove_images()


@pytest.fixture(scope="session")
def image(podman: Podman, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The image built with ``--build-arg BASE=`` a debootstrapped Debian bookworm."""
    return podman.build(podman.import_base(tmp_path_factory.mktemp("base")))


def _hand_to_the_image_user(folder: Path) -> None:
    """``chown -R 10001:10001 folder``, as docs/container.rst tells users to do for /data."""
    for file in [folder, *folder.rglob("*")]:
        os.chown(file, IMAGE_UID, IMAGE_UID)


def test_the_image_runs_the_console_script_as_a_non_root_user_with_state_on_the_volume(podman, image):
    inspected = json.loads(podman("image", "inspect", image).stdout)[0]
    config = inspected["Config"]

    assert config["User"] == f"{IMAGE_UID}:{IMAGE_UID}"
    assert config["Entrypoint"] == ["phishme-intel"]
    assert config["Cmd"] == ["-conf", "/data/config.ini"]
    assert list(config["Volumes"]) == ["/data"]
    assert config["WorkingDir"] == "/data"
    assert "phishme-intel -conf /data/config.ini --status" in " ".join(inspected["Healthcheck"]["Test"])


def test_the_image_holds_no_pip_cache_no_secret_and_not_the_build_machines_ca(podman, image, tmp_path):
    ca = pip_ca()
    size = os.path.getsize(ca) if ca else 1
    script = (
        "find / -xdev \\( -path '*/.cache/pip' -o -name pip_ca \\) -print; echo --; "
        f"find /opt /root /tmp /var/tmp /data /home -xdev -type f -size {size}c -exec sha256sum {{}} +"
    )

    found = podman("run", "--rm", "--network=none", "--user=0", "--entrypoint=/bin/sh", image, "-c", script)

    pip_files, same_size = found.stdout.split("--\n")
    assert pip_files == ""
    if ca:
        assert hashlib.sha256(Path(ca).read_bytes()).hexdigest() not in same_size


def test_a_backfill_and_an_updates_run_in_the_container_store_what_runs_outside_it_store(
    podman: Podman, image: str, tmp_path: Path, dataset: Dataset, simulator
):
    outside = tmp_path / "outside"
    outside.mkdir()
    config = write_config(outside, simulator.url)
    inside = tmp_path / "inside"
    inside.mkdir()
    shutil.copy(config, inside / "config.ini")
    _hand_to_the_image_user(inside)

    backfill = podman.run(image, inside)
    assert (backfill.returncode, backfill.stderr) == (0, "")
    assert run_cli(config).returncode == 0
    dataset.republish(20)
    dataset.delete(5)
    dataset.add(malware=4, phish=2)
    updates = podman.run(image, inside)
    assert (updates.returncode, updates.stderr) == (0, "")
    assert run_cli(config).returncode == 0

    in_container = store(inside / "phishme_intel.sqlite3")
    assert in_container == store(outside / "phishme_intel.sqlite3")
    assert in_container["threats"] == dataset.live_ids() and len(in_container["deleted"]) == 5
    status = json.loads((inside / "phishme_intel.status.json").read_text())
    assert (status["last_run"]["mode"], status["totals"]["runs"]) == ("updates", 2)
    assert (inside / "phishme_intel.sqlite3").stat().st_uid == IMAGE_UID

    health = podman.run(image, inside, "-conf", "/data/config.ini", "--status")
    assert health.returncode == 0, health.stdout + health.stderr
    assert health.stdout.startswith("health        HEALTHY: the last run succeeded")


def test_the_service_mode_in_the_container_is_healthy_over_http_and_for_podman_and_stops_on_sigterm(
    podman: Podman, image: str, tmp_path: Path, simulator
):
    data = tmp_path / "data"
    data.mkdir()
    write_config(data, simulator.url)
    _hand_to_the_image_user(data)
    name = f"phishme-intel-service-{podman.tag}"
    log = data / "phishme_intel.log"

    podman("run", "-d", "--name", name, "--network=host", "--volume", f"{data}:/data", image,
           "-conf", "/data/config.ini", "--every", "1h", "--listen", "127.0.0.1:0")
    try:
        address = wait_until(lambda: log.exists() and re.search(r"serving /healthz and /metrics on (\S+)",
                                                                log.read_text()), "the service's address in its log")
        healthz = wait_until(lambda: (answer := http_get(f"{address.group(1)}/healthz"))[0] == 200 and answer,
                             "/healthz 200")
        checked = podman("healthcheck", "run", name, check=False)
        podman("stop", "--time", "30", name)
        state = json.loads(podman("inspect", name).stdout)[0]["State"]
    finally:
        podman("rm", "--force", name, check=False)

    assert healthz[1].startswith("HEALTHY: the last run succeeded")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert state["ExitCode"] == 0
    assert "service stopped by SIGTERM" in log.read_text()
