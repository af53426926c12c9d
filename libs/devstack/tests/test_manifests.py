"""The offline checks of deploy/k8s and docker-compose.yml that `make lint` runs."""

from __future__ import annotations

from pathlib import Path

import yaml

from rateline_devstack.manifests import check, main
from rateline_devstack.stack import SERVICES

ROOT = Path(__file__).resolve().parents[3]
K8S = ROOT / "deploy" / "k8s"
COMPOSE = ROOT / "docker-compose.yml"

DEPLOYMENT = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "x"},
    "spec": {
        "selector": {"matchLabels": {"app": "x"}},
        "template": {
            "metadata": {"labels": {"app": "x"}},
            "spec": {"containers": [{"name": "x", "image": "x:1"}]},
        },
    },
}


def write(path: Path, *docs: object) -> Path:
    path.write_text(yaml.safe_dump_all(docs))
    return path


def test_the_shipped_manifests_and_compose_file_pass() -> None:
    report = check([K8S, COMPOSE])
    assert report.errors == []
    # Deployment + Service per process, config, secrets, NATS: nothing silently skipped.
    assert report.checked >= 2 * (len(SERVICES) + 1) + 5
    skipped = [n for n in report.notes if "custom resource" in n]
    assert len(skipped) == len(SERVICES) + 1  # one CloudNativePG Cluster per database


def test_every_process_has_probes_resources_and_a_migrate_init_container() -> None:
    for name in ("gateway", *SERVICES):
        path = K8S / ("gateway.yaml" if name == "gateway" else f"services/{name}.yaml")
        deployment = next(d for d in yaml.safe_load_all(path.read_text()) if d["kind"] == "Deployment")
        pod = deployment["spec"]["template"]["spec"]
        (init,) = pod["initContainers"]
        (container,) = pod["containers"]
        assert init["args"] == [name, "migrate"]
        assert container["args"] == [name, "serve"]
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert {"requests", "limits"} <= set(container["resources"])
        refs = [next(iter(e.values()))["name"] for e in container["envFrom"]]
        assert refs == ["rateline-config", f"rateline-{name}"]


def test_an_unknown_field_is_an_error(tmp_path: Path) -> None:
    bad = {**DEPLOYMENT, "spec": {**DEPLOYMENT["spec"], "replicaz": 2}}
    report = check([write(tmp_path / "bad.yaml", bad)])
    assert len(report.errors) == 1
    assert "replicaz" in report.errors[0]


def test_a_wrong_type_and_an_unknown_kind_are_errors(tmp_path: Path) -> None:
    wrong = {**DEPLOYMENT, "spec": {**DEPLOYMENT["spec"], "replicas": "two"}}
    unknown = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}
    report = check([write(tmp_path / "a.yaml", wrong, unknown)])
    assert len(report.errors) == 2
    assert "replicas" in report.errors[0]
    assert "Widget" in report.errors[1]


def test_broken_yaml_and_missing_kustomize_resources_are_errors(tmp_path: Path, capsys) -> None:
    (tmp_path / "broken.yaml").write_text("a: [1, 2\n")
    write(
        tmp_path / "kustomization.yaml",
        {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
         "resources": ["gone.yaml", "broken.yaml"]},
    )
    assert main([str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "broken.yaml: not valid YAML" in out
    assert "gone.yaml does not exist" in out


def test_compose_must_migrate_before_serving_every_service(tmp_path: Path) -> None:
    compose = yaml.safe_load(COMPOSE.read_text())
    del compose["services"]["usage-migrate"]
    compose["services"]["payment"].pop("healthcheck")
    report = check([write(tmp_path / "docker-compose.yml", compose)])
    assert len(report.errors) == 2
    assert "usage-migrate" in report.errors[0]
    assert "payment needs a healthcheck" in report.errors[1]
