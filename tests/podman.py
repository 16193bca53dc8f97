"""Podman for the container tests: the machine's adjustments, a local Debian base, the image.

No image can be pulled here (no registry), so the base is made with ``debootstrap
--variant=minbase`` from the machine's own Debian mirror and ``podman import``-ed. Podman
gets a containers.conf of its own (``CONTAINERS_CONF``), with the two adjustments this
kind of machine needs: the ``runc`` runtime (crun refuses its hybrid cgroups) and ulimits
it can grant. Podman's storage and database stay at their default place (a custom
``static_dir`` made every run wait 20 s for conmon). Every container uses the host's
network (``--network=host``), so nothing is routed anywhere but where the host routes.
"""

from __future__ import annotations

import configparser
import glob
import os
import re
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
from support import ROOT

CONTAINERS_CONF = """\
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=20000:20000"]

[engine]
runtime = "runc"
"""
TOOLS = ("podman", "debootstrap", "runc")
IMAGE_UID = 10001


def require_podman() -> None:
    """Skip (fail in CI) unless podman can run containers here: as root, with the tools installed."""
    problem = None
    if os.geteuid() != 0:
        problem = "podman builds and runs the image only as root on this kind of machine (no subuid setup)"
    elif missing := [tool for tool in TOOLS if shutil.which(tool) is None]:
        problem = f"not installed: {', '.join(missing)} (see .ci/system-packages)"
    if problem is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI must run the container tests: {problem}")
    pytest.skip(problem)


def debian_mirror() -> str:
    """The Debian mirror apt uses on this machine (sources.list or deb822 .sources); deb.debian.org if none."""
    for path in ["/etc/apt/sources.list", *sorted(glob.glob("/etc/apt/sources.list.d/*.list"))]:
        for line in Path(path).read_text().splitlines() if os.path.exists(path) else []:
            match = re.match(r"deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+(\S+)", line)
            if match and "security" not in match.group(2):
                return match.group(1)
    for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
        for stanza in Path(path).read_text().split("\n\n"):
            fields = dict(re.findall(r"^(\w[\w-]*):\s*(.*)$", stanza, re.MULTILINE))
            if "deb" in fields.get("Types", "").split() and "security" not in fields.get("Suites", ""):
                return fields["URIs"].split()[0]
    return "http://deb.debian.org/debian"


def pip_ca() -> str | None:
    """The CA bundle pip is told to trust on this machine (``PIP_CERT`` or pip.conf), if any."""
    if os.environ.get("PIP_CERT"):
        return os.environ["PIP_CERT"]
    for path in ("/etc/pip.conf", "/etc/xdg/pip/pip.conf", os.path.expanduser("~/.config/pip/pip.conf")):
        config = configparser.ConfigParser(interpolation=None)
        config.read(path)
        if config.get("global", "cert", fallback=""):
            return config.get("global", "cert")
    return None


class Podman:
    """``podman`` with this machine's adjustments; names every image and container it makes, removes them."""

    def __init__(self, workdir: Path) -> None:
        conf = workdir / "containers.conf"
        conf.write_text(CONTAINERS_CONF)
        self.env = {**os.environ, "CONTAINERS_CONF": str(conf)}
        self.tag = uuid.uuid4().hex[:12]
        self.images: list[str] = []

    def __call__(self, *args: str, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout, env=self.env)
        if check and result.returncode != 0:
            raise AssertionError(f"podman {' '.join(args)} exited {result.returncode}:\n{result.stderr[-3000:]}")
        return result

    def import_base(self, workdir: Path) -> str:
        """A minimal Debian bookworm with python3 and its venv module, as a local image."""
        rootfs = workdir / "rootfs"
        subprocess.run(
            ["debootstrap", "--variant=minbase", "--include=python3,python3-venv", "bookworm", str(rootfs),
             debian_mirror()],
            check=True, capture_output=True, timeout=900,
        )
        for leftover in ("var/cache/apt/archives", "var/lib/apt/lists"):  # downloaded .debs, package lists
            shutil.rmtree(rootfs / leftover)
        name = f"localhost/phishme-intel-test-base:{self.tag}"
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        imported = subprocess.run(["podman", "import", "-", name], stdin=tar.stdout, capture_output=True,
                                  text=True, timeout=300, env=self.env)
        tar.wait()
        assert imported.returncode == 0, imported.stderr
        self.images.append(name)
        shutil.rmtree(rootfs)
        return name

    def build(self, base: str) -> str:
        """The repository's Dockerfile built on ``base``; pip's CA (if any) passed as a build secret."""
        name = f"localhost/phishme-intel-test:{self.tag}"
        secret = ["--secret", f"id=pip_ca,src={ca}"] if (ca := pip_ca()) else []
        self("build", "--network=host", "--format=docker", "--layers=false", "--build-arg", f"BASE={base}", *secret,
             "--tag", name, str(ROOT), timeout=900)
        self.images.append(name)
        return name

    def run(self, image: str, data: Path, *args: str, check: bool = True,
            options: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
        """``podman run`` of ``image`` with ``data`` as /data, on the host's network, removed afterwards.

        Without its health check: podman runs those from systemd timers, and there is no systemd here.
        """
        return self("run", "--rm", "--network=host", "--no-healthcheck", "--volume", f"{data}:/data", *options,
                    image, *args, check=check)

    def remove_images(self) -> None:
        for name in reversed(self.images):
            self("rmi", "--force", name, check=False)
