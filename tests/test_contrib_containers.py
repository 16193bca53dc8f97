"""contrib/'s container examples (Compose, Kubernetes) name commands, flags, paths and users that exist."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
import yaml
from support import ROOT

from phishme_intel import cli
from phishme_intel.config import sources

CONTRIB = ROOT / "contrib"
DOCKERFILE = (ROOT / "Dockerfile").read_text()
API_PASSWORD_VARIABLE = sources.variable("pm_api", "pass")


def _instruction(name: str) -> str:
    """The argument of the final stage's (last) ``name`` instruction in the Dockerfile."""
    return re.findall(rf"^{name}\s+(.+)$", DOCKERFILE, re.MULTILINE)[-1]


IMAGE_USER = _instruction("USER")
IMAGE_VOLUME = _instruction("VOLUME")
IMAGE_ENTRYPOINT = json.loads(_instruction("ENTRYPOINT"))


def _documents(name: str) -> list[dict]:
    with open(CONTRIB / name) as handle:
        return list(yaml.safe_load_all(handle))


def _kind(documents: list[dict], kind: str) -> list[dict]:
    return [document for document in documents if document["kind"] == kind]


def _arguments(argv: list[str]) -> object:
    """``argv`` as the console script parses it (argparse exits 2 on an unknown flag)."""
    return cli.parser().parse_args(argv)


def _pod(documents: list[dict]) -> dict:
    (workload,) = _kind(documents, "CronJob") or _kind(documents, "Deployment")
    spec = workload["spec"]
    return (spec["jobTemplate"]["spec"] if "jobTemplate" in spec else spec)["template"]["spec"]


def test_the_image_runs_as_the_user_and_on_the_volume_the_examples_name():
    assert IMAGE_USER == "10001:10001" and IMAGE_VOLUME == "/data"
    assert IMAGE_ENTRYPOINT == ["phishme-intel"]


@pytest.mark.parametrize("name", ["kubernetes/cronjob.yaml", "kubernetes/deployment.yaml"])
def test_a_kubernetes_pod_runs_unprivileged_on_a_read_only_root_with_its_config_on_the_claim(name):
    documents = _documents(name)
    pod = _pod(documents)
    (claim,) = _kind(documents, "PersistentVolumeClaim")
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    user, group = (int(part) for part in IMAGE_USER.split(":"))

    assert pod["securityContext"]["runAsNonRoot"] is True
    assert (pod["securityContext"]["runAsUser"], pod["securityContext"]["runAsGroup"]) == (user, group)
    for container in pod["initContainers"] + pod["containers"]:
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
        assert volumes[mounts[IMAGE_VOLUME]]["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
    (seed,) = pod["initContainers"]
    assert "/data/config.ini" in seed["command"][-1]
    (main,) = pod["containers"]
    arguments = _arguments(main["args"])
    assert Path(arguments.config).parent == Path(IMAGE_VOLUME)
    (password,) = main["env"]
    assert password["name"] == API_PASSWORD_VARIABLE
    header = (CONTRIB / name).read_text()
    secret = re.search(r"kubectl create secret generic (\S+) --from-literal=(\w+)=", header).groups()
    assert secret == (password["valueFrom"]["secretKeyRef"]["name"], password["valueFrom"]["secretKeyRef"]["key"])
    configmap = re.search(r"kubectl create configmap (\S+) --from-file=config.ini", header).group(1)
    seeds = [mount["name"] for mount in seed["volumeMounts"] if mount["mountPath"] in seed["command"][-1]]
    assert [volumes[each]["configMap"]["name"] for each in seeds if "configMap" in volumes[each]] == [configmap]


def test_the_cronjob_syncs_every_15_minutes_never_two_at_once():
    (job,) = _kind(_documents("kubernetes/cronjob.yaml"), "CronJob")

    assert job["spec"]["schedule"] == "*/15 * * * *"
    assert job["spec"]["concurrencyPolicy"] == "Forbid"
    assert _arguments(_pod([job])["containers"][0]["args"]).every is None


def test_the_deployment_runs_the_service_mode_and_probes_its_health_endpoint():
    (deployment,) = _kind(_documents("kubernetes/deployment.yaml"), "Deployment")
    (main,) = _pod([deployment])["containers"]
    arguments = _arguments(main["args"])
    ports = {port["name"]: port["containerPort"] for port in main["ports"]}

    assert deployment["spec"]["replicas"] == 1 and deployment["spec"]["strategy"]["type"] == "Recreate"
    assert arguments.every == 15 * 60
    for probe in (main["readinessProbe"], main["livenessProbe"]):
        assert probe["httpGet"]["path"] == "/healthz"
        assert ports[probe["httpGet"]["port"]] == arguments.listen[1]


def test_the_compose_service_builds_the_image_runs_the_service_mode_and_restarts():
    (service,) = yaml.safe_load((CONTRIB / "docker-compose.yml").read_text())["services"].values()
    arguments = _arguments(service["command"])
    listen_port = arguments.listen[1]
    health = shlex.split(service["healthcheck"]["test"][1])

    assert (CONTRIB / service["build"]["context"] / service["build"]["dockerfile"]).resolve() == ROOT / "Dockerfile"
    assert service["restart"] == "unless-stopped"
    assert arguments.every == 15 * 60 and Path(arguments.config).parent == Path(IMAGE_VOLUME)
    assert [volume.split(":")[1] for volume in service["volumes"]] == [IMAGE_VOLUME]
    assert service["ports"] == [f"127.0.0.1:{listen_port}:{listen_port}"]
    assert health[:1] == IMAGE_ENTRYPOINT and _arguments(health[1:health.index(">")]).status
    assert service["user"] == IMAGE_USER and service["read_only"] is True
    assert list(service["environment"]) == [API_PASSWORD_VARIABLE]
