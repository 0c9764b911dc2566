"""The deployment files in deploy/ (docs/scale.md): the Kubernetes
manifests are valid against the Kubernetes API's schemas (strict: no
unknown field), and every command they and the container image run is one
the binary accepts, so a typo in a flag fails here rather than in a
crash-looping pod."""

import pathlib
import re
import subprocess

import kubernetes_validate
import pytest
import yaml

from conftest import server_binary

ROOT = pathlib.Path(__file__).resolve().parents[2]
MANIFESTS = sorted((ROOT / "deploy" / "kubernetes").glob("*.yaml"))
DOCKERFILE = ROOT / "deploy" / "Dockerfile"


def documents():
    return [doc for path in MANIFESTS for doc in yaml.safe_load_all(path.read_text()) if doc]


def containers():
    for doc in documents():
        spec = doc.get("spec", {}).get("template", {}).get("spec", {})
        for container in spec.get("containers", []):
            yield doc["metadata"]["name"], container


def accepts(args):
    """Whether `lakehouse ARGS` parses: clap reads every argument before
    acting on --help, so an unknown flag or a bad value fails first."""
    args = [re.sub(r"\$\((\w+)\)", "10.0.0.7", a) for a in args]  # what Kubernetes substitutes
    done = subprocess.run([str(server_binary()), *args, "--help"], capture_output=True, text=True)
    assert done.returncode == 0, f"lakehouse {' '.join(args)}: {done.stderr}"


def test_manifests_are_valid_kubernetes():
    assert MANIFESTS
    kinds = set()
    for doc in documents():
        kubernetes_validate.validate(doc, kubernetes_validate.latest_version(), strict=True)
        kinds.add((doc["kind"], doc["metadata"]["name"]))
    assert {("Deployment", "lakehouse-scheduler"), ("Deployment", "lakehouse-executor"),
            ("Deployment", "lakehouse-server")} <= kinds


@pytest.mark.parametrize("name", ["lakehouse-scheduler", "lakehouse-executor", "lakehouse-server"])
def test_every_container_command_parses(name):
    (container,) = [c for n, c in containers() if n == name]
    accepts(container["args"])
    # Services and probes name ports the container declares.
    declared = {p["name"] for p in container["ports"]}
    for probe in ("readinessProbe", "livenessProbe"):
        if probe in container:
            check = container[probe].get("httpGet") or container[probe].get("tcpSocket")
            assert check["port"] in declared, (name, probe)


def test_the_image_default_command_parses():
    text = DOCKERFILE.read_text()
    entry = yaml.safe_load(re.search(r"^ENTRYPOINT (.+)$", text, re.M).group(1))
    command = yaml.safe_load(re.search(r"^CMD (.+)$", text, re.M).group(1))
    assert entry == ["lakehouse"]
    accepts(command)
    # The model package the image installs is the one the tests pin.
    wanted = re.search(r"grep -i '\^([\w-]+)'", text).group(1)
    requirements = (ROOT / "tests" / "python" / "requirements.txt").read_text()
    assert re.search(rf"^{wanted}==", requirements, re.M | re.I)
