"""Stack: databases, migrations, processes and their life cycle (customer service only; the
whole system is exercised by test_cli.py and the end-to-end tests)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import uuid
from contextlib import nullcontext
from pathlib import Path

import httpx
import psutil
import pytest

from rateline_devstack.stack import Stack, StackError


def prefix() -> str:
    return f"st_{uuid.uuid4().hex[:8]}"


def listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_start_kill_restart_on_the_same_port_and_stop(tmp_path: Path, pg_server, nats_server) -> None:
    stack = Stack(tmp_path, pg_server, nats_server, db_prefix=prefix(), services=["customer"],
                  gateway=False)
    phases: list[str] = []

    def progress(label: str) -> nullcontext[None]:
        phases.append(label)
        return nullcontext()

    stack.start(progress=progress)
    try:
        assert phases == ["creating 1 databases", "migrating 1 of 1 databases", "starting 1 processes"]
        url = stack.service_urls["customer"]
        port = int(url.rsplit(":", 1)[1])
        assert httpx.get(f"{url}/readyz").status_code == 200
        env = stack.env("customer")
        assert env["RATELINE_CUSTOMER_JWKS_URL"] == f"{stack.gateway_url}/.well-known/jwks.json"
        assert env["RATELINE_CUSTOMER_DATABASE_URL"].endswith(f"/{stack.database('customer')}")

        first = psutil.Process(stack.pids()["customer"])
        assert os.getpgid(first.pid) == first.pid  # its own group: Ctrl-C reaches only the runner
        stack.kill("customer")
        assert not psutil.pid_exists(first.pid) or first.status() == psutil.STATUS_ZOMBIE
        assert not listening(port)

        stack.restart("customer")
        assert stack.service_urls["customer"] == url
        assert httpx.get(f"{url}/readyz").status_code == 200
        second = stack.pids()["customer"]
        assert second != first.pid
    finally:
        stack.stop()
    assert stack.pids() == {}
    assert not psutil.pid_exists(second)
    log = (tmp_path / "logs" / "customer.log").read_text()
    assert log.count("rateline_customer serve") == 2
    assert "rateline_customer migrate" in log


def test_a_process_that_cannot_start_is_named_with_its_log(
    tmp_path: Path, pg_server, nats_server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RATELINE_CUSTOMER_DATABASE_POOL_SIZE", "lots")
    stack = Stack(tmp_path, pg_server, nats_server, db_prefix=prefix(), services=["customer"],
                  gateway=False)
    with pytest.raises(StackError) as err:
        stack.start()
    message = str(err.value)
    assert message.startswith("customer migrations failed")
    assert "database_pool_size" in message  # the tail of customer.log
    assert stack.pids() == {}


def test_children_die_with_the_runner(tmp_path: Path, pg_server, nats_server) -> None:
    """PR_SET_PDEATHSIG: a runner killed hard (SIGKILL) takes its services with it."""
    script = textwrap.dedent(
        f"""
        import sys, time
        from pathlib import Path
        from rateline_shared.engines import EmbeddedNats, EmbeddedPostgres
        from rateline_devstack.stack import Stack
        pg = EmbeddedPostgres(Path("unused"), port={pg_server.port})
        nats = EmbeddedNats(Path("unused"), port={nats_server.port})
        stack = Stack(Path({str(tmp_path)!r}), pg, nats, db_prefix={prefix()!r},
                      services=["customer"], gateway=False).start()
        print(stack.pids()["customer"], flush=True)
        time.sleep(600)
        """
    )
    runner = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert runner.stdout is not None
        child = psutil.Process(int(runner.stdout.readline()))
        assert child.ppid() == runner.pid
    finally:
        runner.kill()
        runner.wait()
    child.wait(timeout=10)  # raises TimeoutExpired if the service outlived its runner
    assert not child.is_running()
