"""Offline checks of the deployment files (``make lint``):

    python -m rateline_devstack.manifests deploy/k8s docker-compose.yml

- every ``*.yaml``/``*.yml`` parses (all documents);
- every built-in Kubernetes object validates against the Kubernetes JSON schema
  (kubernetes-validate, strict: unknown fields are errors);
- custom resources of known operators (CloudNativePG) are skipped with a note, since no schema
  for them exists offline; an unknown kind is an error;
- every ``kustomization.yaml`` names only files and directories that exist;
- ``docker-compose.yml`` migrates and serves every service and the gateway, with a healthcheck.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from rateline_devstack.stack import GATEWAY, SERVICES

KUBERNETES_VERSION = "1.31"
#: API groups of custom resources we ship examples for (no schema offline).
CRD_GROUPS = {"postgresql.cnpg.io": "CloudNativePG"}
KUSTOMIZE_GROUP = "kustomize.config.k8s.io"


@dataclass
class Report:
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    checked: int = 0

    @property
    def ok(self) -> bool:
        return not self.errors


def yaml_files(paths: Iterable[Path]) -> Iterator[Path]:
    for path in paths:
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml"))
        else:
            yield path


def load_documents(path: Path, report: Report) -> list[Any]:
    try:
        return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]
    except (OSError, yaml.YAMLError) as exc:
        report.errors.append(f"{path}: not valid YAML: {exc}")
        return []


def check_kubernetes_object(path: Path, doc: Any, report: Report) -> None:
    from kubernetes_validate import utils as kv

    if not isinstance(doc, dict) or "apiVersion" not in doc or "kind" not in doc:
        report.errors.append(f"{path}: a document without apiVersion/kind")
        return
    api_version, kind = str(doc["apiVersion"]), str(doc["kind"])
    name = (doc.get("metadata") or {}).get("name", "?")
    group = api_version.split("/")[0] if "/" in api_version else ""
    if group in CRD_GROUPS:
        report.notes.append(
            f"{path}: {kind} {name} ({api_version}) is a {CRD_GROUPS[group]} custom resource; "
            "no schema offline, checked as YAML only"
        )
        return
    try:
        kv.validate(doc, KUBERNETES_VERSION, strict=True)
        report.checked += 1
    except kv.ValidationError as exc:
        where = ".".join(str(p) for p in exc.path) or "(root)"
        report.errors.append(f"{path}: {kind} {name}: {where}: {exc.message}")
    except kv.SchemaNotFoundError:
        report.errors.append(
            f"{path}: {kind} {name}: unknown kind for apiVersion {api_version} in Kubernetes "
            f"{KUBERNETES_VERSION} (a custom resource? add its group to CRD_GROUPS)"
        )


def check_kustomization(path: Path, doc: Any, report: Report) -> None:
    base = path.parent
    entries = list(doc.get("resources") or []) + list(doc.get("components") or [])
    for gen in doc.get("configMapGenerator") or []:
        entries += [f.split("=", 1)[-1] for f in gen.get("files") or []]
    for entry in entries:
        if "://" in entry:
            continue  # a remote base; cannot be checked offline
        target = base / entry
        if target.is_dir():
            if not any((target / n).exists() for n in ("kustomization.yaml", "kustomization.yml")):
                report.errors.append(f"{path}: {entry}/ has no kustomization.yaml")
        elif not target.is_file():
            report.errors.append(f"{path}: {entry} does not exist")
    listed = {(base / e).resolve() for e in entries}
    for sibling in base.glob("*.yaml"):
        if sibling.name != path.name and sibling.resolve() not in listed:
            report.notes.append(f"{path}: {sibling.name} is not listed in resources")


def check_compose(path: Path, doc: Any, report: Report) -> None:
    services = (doc or {}).get("services") or {}
    for name in (GATEWAY, *SERVICES):
        serve, migrate = services.get(name), services.get(f"{name}-migrate")
        if serve is None or migrate is None:
            report.errors.append(f"{path}: needs services {name!r} and {name + '-migrate'!r}")
            continue
        if serve.get("command") != [name, "serve"] or migrate.get("command") != [name, "migrate"]:
            report.errors.append(f"{path}: {name} must run [{name}, serve] after [{name}, migrate]")
        needs = (serve.get("depends_on") or {}).get(f"{name}-migrate") or {}
        if needs.get("condition") != "service_completed_successfully":
            report.errors.append(f"{path}: {name} must wait for {name}-migrate to complete")
        if "/readyz" not in str((serve.get("healthcheck") or {}).get("test")):
            report.errors.append(f"{path}: {name} needs a healthcheck on /readyz")
    report.checked += 1


def check(paths: Iterable[Path]) -> Report:
    report = Report()
    for path in yaml_files(paths):
        docs = load_documents(path, report)
        if path.name.startswith("docker-compose") or path.name.startswith("compose"):
            for doc in docs:
                check_compose(path, doc, report)
            continue
        for doc in docs:
            if isinstance(doc, dict) and str(doc.get("apiVersion", "")).startswith(
                KUSTOMIZE_GROUP
            ):
                check_kustomization(path, doc, report)
            else:
                check_kubernetes_object(path, doc, report)
    return report


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    paths = [Path(a) for a in args] or [Path("deploy/k8s"), Path("docker-compose.yml")]
    missing = [p for p in paths if not p.exists()]
    report = check(p for p in paths if p.exists())
    report.errors += [f"{p}: does not exist" for p in missing]
    for note in report.notes:
        print(f"note: {note}")
    for error in report.errors:
        print(f"ERROR {error}")
    print(
        f"manifests: {report.checked} objects validated (Kubernetes {KUBERNETES_VERSION}, strict), "
        f"{len(report.notes)} notes, {len(report.errors)} errors"
    )
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
