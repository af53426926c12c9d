"""The image's entry script and the pins that must agree across Makefile and Dockerfile
(Docker is not available in CI, so what can be checked without it is checked here)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from rateline_devstack.stack import GATEWAY, SERVICES

ROOT = Path(__file__).resolve().parents[3]
ENTRYPOINT = ROOT / "deploy" / "docker" / "entrypoint.sh"


def entrypoint(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    return subprocess.run(
        ["sh", str(ENTRYPOINT), *args], capture_output=True, text=True, timeout=60,
        env={**os.environ, "PATH": path, **env},
    )


def test_the_script_knows_every_process() -> None:
    listed = re.search(r'^services="([^"]+)"$', ENTRYPOINT.read_text(), re.M)
    assert listed is not None
    assert listed.group(1).split() == [GATEWAY, *SERVICES]


@pytest.mark.parametrize("name", [GATEWAY, "customer"])
def test_the_first_argument_picks_the_service(name: str) -> None:
    result = entrypoint(name, "--help")
    assert result.returncode == 0, result.stderr
    assert f"rateline-{name}" in result.stdout


def test_the_service_can_come_from_the_environment() -> None:
    result = entrypoint("--help", SERVICE="catalog")
    assert result.returncode == 0, result.stderr
    assert "rateline-catalog" in result.stdout


def test_an_unknown_service_is_refused() -> None:
    result = entrypoint("billing", "serve")
    assert result.returncode == 64
    assert "services: gateway customer" in result.stderr


def test_the_dockerfile_installs_every_workspace_member_from_the_lock() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    members = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["uv"]["workspace"]
    for pattern in members["members"]:
        for member in ROOT.glob(pattern):
            if (member / "pyproject.toml").exists():
                rel = member.relative_to(ROOT).as_posix()
                assert f"COPY {rel}/pyproject.toml {rel}/" in dockerfile
    assert "uv sync --frozen --no-dev --all-packages" in dockerfile
    assert re.search(r"^FROM python:3\.11-slim|PYTHON_IMAGE=python:3\.11-slim", dockerfile, re.M)


def test_uv_is_pinned_to_one_version() -> None:
    makefile = (ROOT / "Makefile").read_text()
    dockerfile = (ROOT / "Dockerfile").read_text()
    pinned = re.search(r"^UV_VERSION := (\S+)$", makefile, re.M)
    assert pinned is not None
    assert f"ghcr.io/astral-sh/uv:{pinned.group(1)} " in dockerfile
