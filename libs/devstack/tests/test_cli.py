"""`rateline-stack run` as a user runs it (`make run`): the whole system with the demo, ready,
stopped by SIGTERM within 10 s with no process left behind; a second run keeps the data."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from rateline_shared.engines import free_port

CLI = Path(sys.executable).parent / "rateline-stack"


class Runner:
    """One `rateline-stack run` subprocess and every process it started (seen so far)."""

    def __init__(self, data_dir: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.data_dir = data_dir
        self.out = data_dir.parent / f"{data_dir.name}-{time.monotonic_ns()}.out"
        with self.out.open("wb") as out:
            self.proc = subprocess.Popen(
                [str(CLI), "run", "--data-dir", str(data_dir), *args],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                env={**os.environ, **(env or {})},
            )
        self.seen: dict[int, psutil.Process] = {}
        self.names: set[str] = set()

    @property
    def output(self) -> str:
        return self.out.read_text(errors="replace")

    def collect(self) -> None:
        try:
            children = psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return
        for child in children:
            if child.pid not in self.seen:
                self.seen[child.pid] = child
                try:
                    self.names.add(child.name())
                except psutil.NoSuchProcess:
                    pass

    def wait_ready(self, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        state_file = self.data_dir / "stack.json"
        while time.monotonic() < deadline:
            self.collect()
            assert self.proc.poll() is None, f"runner exited early:\n{self.output}"
            if state_file.exists():
                state = json.loads(state_file.read_text())
                if httpx.get(f"{state['gateway_url']}/readyz").status_code == 200:
                    self.collect()
                    return state
            time.sleep(0.2)
        raise AssertionError(f"not ready within {timeout}s:\n{self.output}")

    def wait_exit(self, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None and time.monotonic() < deadline:
            self.collect()
            time.sleep(0.05)
        code = self.proc.poll()
        assert code is not None, f"runner still running after {timeout}s:\n{self.output}"
        return code

    def left_behind(self) -> list[str]:
        alive = []
        for p in self.seen.values():
            try:
                if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                    alive.append(f"{p.pid} {' '.join(p.cmdline()[:4])}")
            except psutil.NoSuchProcess:
                pass
        return alive

    def kill(self) -> None:
        for p in [*self.seen.values(), psutil.Process(self.proc.pid)]:
            try:
                p.kill()
            except psutil.Error:
                pass


@pytest.fixture
def runners() -> Iterator[list[Runner]]:
    started: list[Runner] = []
    yield started
    for runner in started:  # a failed test must not leave a system running
        if runner.proc.poll() is None:
            runner.kill()


def token(state: dict) -> dict[str, str]:
    resp = httpx.post(
        f"{state['gateway_url']}/oauth/token",
        data={"grant_type": "client_credentials", "client_id": state["client_id"],
              "client_secret": state["client_secret"]},
    )
    assert resp.status_code == 200, resp.text
    return {"Authorization": f"Bearer {resp.json()['access_token']}"}


def test_run_loads_the_demo_stops_on_sigterm_and_keeps_its_data(
    tmp_path: Path, runners: list[Runner]
) -> None:
    data = tmp_path / "data"
    first = Runner(data, "--gateway-port", str(free_port()))
    runners.append(first)
    state = first.wait_ready(timeout=280)

    assert set(state["services"]) == {"customer", "catalog", "usage", "invoicing", "payment",
                                      "webhooks"}
    assert state["docs_url"] == f"{state['gateway_url']}/docs"
    assert (state["client_id"], state["tenant"]) == ("demo", "demo")
    demo = json.loads((data / "demo.json").read_text())
    assert demo["loaded"] is True, first.output
    assert demo["client_secret"] == state["client_secret"]
    summary = demo["summary"]
    assert summary["records"] == 300
    statuses = sorted(i["payment_status"] for i in summary["invoices"])
    assert statuses == ["failed", "succeeded", "succeeded"], summary
    assert "[7/7] loading the demo operator" in first.output
    assert {"postgres", "nats-server"} <= first.names

    first.proc.send_signal(signal.SIGTERM)
    assert first.wait_exit(timeout=10) == 0, first.output
    assert first.left_behind() == [], first.output
    assert not (data / "stack.json").exists()
    assert not (data / "pg" / "data" / "postmaster.pid").exists()

    second = Runner(data, "--gateway-port", str(free_port()))
    runners.append(second)
    again = second.wait_ready(timeout=120)
    assert "already loaded" in second.output, second.output
    assert again["client_secret"] == state["client_secret"]
    invoices = httpx.get(f"{again['gateway_url']}/v1/invoices", headers=token(again)).json()
    numbers = sorted(i["number"] for i in summary["invoices"])
    assert sorted(i["number"] for i in invoices["items"]) == numbers  # the same, not redone

    stop = subprocess.run([str(CLI), "stop", "--data-dir", str(data)], capture_output=True,
                          text=True, timeout=30)
    assert stop.returncode == 0, stop.stdout + stop.stderr
    assert second.wait_exit(timeout=1) == 0, second.output
    assert second.left_behind() == [], second.output


def test_a_failed_start_stops_what_it_started(tmp_path: Path, runners: list[Runner]) -> None:
    data = tmp_path / "data"
    runner = Runner(
        data, "--services", "customer", "--no-demo", "--gateway-port", str(free_port()),
        env={"RATELINE_CUSTOMER_DATABASE_POOL_SIZE": "lots"},
    )
    runners.append(runner)
    assert runner.wait_exit(timeout=120) == 1
    assert "Rateline did not start: customer migrations failed" in runner.output
    assert "database_pool_size" in runner.output  # the tail of the service's log
    assert {"postgres", "nats-server"} <= runner.names
    assert runner.left_behind() == []
    assert not (data / "runner.pid").exists()
