"""The whole Rateline system as local processes: every service and the gateway on free ports,
each with its own database on one embedded PostgreSQL, all sharing one embedded NATS server.

Used by ``rateline-stack run`` (``make run``) and by the end-to-end tests. Every child runs in
its own process group (a Ctrl-C in the terminal reaches only the runner, which then stops the
children in order) and gets ``PR_SET_PDEATHSIG=SIGTERM``, so no service outlives its runner
even when the runner is killed hard.

Children are spawned from the thread that calls :meth:`Stack.start` / :meth:`Stack.restart`:
the kernel delivers the parent-death signal when that *thread* exits, so call them from a
thread that lives as long as the stack (the main thread, in practice).
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from rateline_shared.engines import EmbeddedNats, EmbeddedPostgres, free_port

SERVICES = ("customer", "catalog", "usage", "invoicing", "payment", "webhooks")
GATEWAY = "gateway"

#: ``progress(label)`` returns a context manager that wraps one phase of the start-up.
Progress = Callable[[str], AbstractContextManager[object]]

_PR_SET_PDEATHSIG = 1
_libc: Any = None
if sys.platform.startswith("linux"):
    # Loaded here, not in the child: nothing that may take a lock runs between fork and exec.
    with contextlib.suppress(OSError):
        _libc = ctypes.CDLL(None, use_errno=True)


class StackError(RuntimeError):
    """A process of the stack failed to migrate, died, or did not become ready in time."""


def _no_progress(label: str) -> AbstractContextManager[object]:
    return contextlib.nullcontext()


def _child_setup(parent_pid: int) -> Callable[[], None]:
    """``preexec_fn``: die with the parent (SIGTERM), even if it is already gone."""

    def setup() -> None:
        if _libc is not None:
            _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent_pid:  # the parent died before prctl took effect
            os.kill(os.getpid(), signal.SIGTERM)

    return setup


def log_tail(path: Path, lines: int = 30) -> str:
    """The last ``lines`` lines of a log file (empty if there is none)."""
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 64 * 1024))
            text = f.read().decode(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


@dataclass
class _Proc:
    name: str
    port: int
    popen: subprocess.Popen[bytes] | None = None


class Stack:
    """Databases, migrations and processes of every service plus the gateway.

    ``services`` may name a subset of :data:`SERVICES` (tests of a partial system);
    ``gateway_port`` pins the gateway's port (0 = any free port).
    """

    def __init__(
        self,
        workdir: Path,
        pg: EmbeddedPostgres,
        nats: EmbeddedNats,
        db_prefix: str = "rateline",
        log_dir: Path | None = None,
        *,
        services: Sequence[str] = SERVICES,
        gateway: bool = True,
        gateway_port: int = 0,
        ready_timeout: float = 60.0,
        migrate_timeout: float = 180.0,
    ) -> None:
        unknown = set(services) - set(SERVICES)
        if unknown:
            raise ValueError(f"unknown services: {sorted(unknown)}; known: {SERVICES}")
        self.workdir = Path(workdir)
        self.pg = pg
        self.nats = nats
        self.db_prefix = db_prefix
        self.log_dir = Path(log_dir) if log_dir is not None else self.workdir / "logs"
        self.services = tuple(s for s in SERVICES if s in services)
        self.with_gateway = gateway
        self.ready_timeout = ready_timeout
        self.migrate_timeout = migrate_timeout
        # Ports are chosen once: a restarted process comes back where its peers expect it.
        self._procs: dict[str, _Proc] = {}
        taken: set[int] = set()
        for name in (GATEWAY, *self.services):  # services need the gateway's JWKS URL
            port = gateway_port if name == GATEWAY else 0
            while not port or port in taken:
                port = free_port()
            taken.add(port)
            self._procs[name] = _Proc(name, port)

    # --- addresses ------------------------------------------------------------------------
    @property
    def names(self) -> tuple[str, ...]:
        """Every process of this stack: the gateway first, then the services."""
        return ((GATEWAY,) if self.with_gateway else ()) + self.services

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self._procs[name].port}"

    @property
    def gateway_url(self) -> str:
        return self.url(GATEWAY)

    @property
    def service_urls(self) -> dict[str, str]:
        return {name: self.url(name) for name in self.services}

    def database(self, name: str) -> str:
        return f"{self.db_prefix}_{name}"

    def log_path(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    def env(self, name: str) -> dict[str, str]:
        """The environment of one process: the runner's plus its ``RATELINE_<NAME>_*`` vars."""
        prefix = f"RATELINE_{name.upper()}_"
        own = {
            "DATABASE_URL": self.pg.url(self.database(name)),
            "NATS_URL": self.nats.url,
            "HOST": "127.0.0.1",
            "PORT": str(self._procs[name].port),
            "LOG_JSON": "true",
        }
        if name == GATEWAY:
            own.update({f"{s.upper()}_URL": url for s, url in self.service_urls.items()})
        else:
            own["JWKS_URL"] = f"{self.gateway_url}/.well-known/jwks.json"
        return {**os.environ, "PYTHONUNBUFFERED": "1", **{prefix + k: v for k, v in own.items()}}

    # --- processes --------------------------------------------------------------------------
    def _spawn(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with self.log_path(name).open("ab") as log:
            stamp = time.strftime("%Y-%m-%d %H:%M:%S")
            log.write(f"--- {stamp} rateline_{name} {' '.join(args)}\n".encode())
            log.flush()
            return subprocess.Popen(
                [sys.executable, "-m", f"rateline_{name}", *args],
                env=self.env(name),
                cwd=self.workdir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                process_group=0,
                preexec_fn=_child_setup(os.getpid()),
            )

    def _failure(self, name: str, what: str) -> StackError:
        tail = log_tail(self.log_path(name))
        return StackError(
            f"{name} {what}; see {self.log_path(name)}"
            + (f"\n--- last lines of {name}.log ---\n{tail}" if tail else "")
        )

    def start(self, progress: Progress = _no_progress) -> Stack:
        """Create the databases, migrate them, start every process and wait until ready.

        If anything fails, whatever was started is stopped again before the error is raised.
        """
        self.workdir.mkdir(parents=True, exist_ok=True)
        names = self.names
        try:
            with progress(f"creating {len(names)} databases"):
                for name in names:
                    self.pg.ensure_database(self.database(name))
                pending = [name for name in names if not self.at_head(name)]
            label = f"migrating {len(pending)} of {len(names)} databases"
            with progress(label if pending else "migrations: every database is up to date"):
                self.migrate(pending)
            with progress(f"starting {len(names)} processes"):
                for name in names:
                    self._procs[name].popen = self._spawn(name, "serve")
                self.wait_ready(names)
        except BaseException:
            self.stop()
            raise
        return self

    def at_head(self, name: str) -> bool:
        """True when the database is known to be at the latest revision of the process's
        migrations (``<package>/migrations``, the layout every service shares); when in any
        doubt, False, and the migrations run."""
        spec = importlib.util.find_spec(f"rateline_{name}")  # finds, does not import
        if spec is None or not spec.submodule_search_locations:
            return False
        scripts = Path(next(iter(spec.submodule_search_locations))) / "migrations"
        try:
            from alembic.script import ScriptDirectory

            heads = set(ScriptDirectory(str(scripts)).get_heads())
            current = set(
                self.pg.psql("SELECT version_num FROM alembic_version", self.database(name))
                .split()
            )
        except Exception:  # no alembic_version yet, unreadable scripts, ...
            return False
        return bool(heads) and current == heads

    def migrate(self, names: Sequence[str] | None = None) -> None:
        """Run migrations all at once, each as ``python -m rateline_<name> migrate``.

        :meth:`start` passes only the processes whose database is behind: skipping the
        up-to-date ones saves starting an interpreter per process on every run.
        """
        todo = self.names if names is None else names
        running = {name: self._spawn(name, "migrate") for name in todo}
        deadline = time.monotonic() + self.migrate_timeout
        try:
            for name, proc in running.items():
                try:
                    code = proc.wait(max(0.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    raise self._failure(name, "migrations timed out") from None
                if code != 0:
                    raise self._failure(name, f"migrations failed (exit code {code})")
        finally:
            for proc in running.values():
                if proc.poll() is None:
                    _kill_group(proc)

    def wait_ready(self, names: Sequence[str] | None = None) -> None:
        """Poll ``/readyz`` of each process until it answers 200 (or it dies, or time is up)."""
        pending = list(names or self.names)
        deadline = time.monotonic() + self.ready_timeout
        with httpx.Client(timeout=2.0) as client:
            while pending:
                for name in list(pending):
                    proc = self._procs[name].popen
                    if proc is None or proc.poll() is not None:
                        code = None if proc is None else proc.returncode
                        raise self._failure(name, f"exited (code {code}) before it was ready")
                    with contextlib.suppress(httpx.HTTPError):
                        if client.get(f"{self.url(name)}/readyz").status_code == 200:
                            pending.remove(name)
                if not pending:
                    return
                if time.monotonic() > deadline:
                    raise self._failure(
                        pending[0],
                        f"not ready after {self.ready_timeout:.0f}s (also waiting for: "
                        f"{', '.join(pending[1:]) or 'nothing else'})",
                    )
                time.sleep(0.1)

    def pid(self, name: str) -> int | None:
        proc = self._procs.get(name)
        return proc.popen.pid if proc and proc.popen and proc.popen.poll() is None else None

    def pids(self) -> dict[str, int]:
        return {name: pid for name in self.names if (pid := self.pid(name)) is not None}

    def kill(self, name: str) -> None:
        """SIGKILL one process (a crash, as far as the system can tell) and wait for it."""
        proc = self._procs[name].popen
        if proc is not None and proc.poll() is None:
            _kill_group(proc)

    def restart(self, name: str) -> None:
        """Start one process again on the same port and wait until it is ready."""
        self.kill(name)
        self._procs[name].popen = self._spawn(name, "serve")
        self.wait_ready([name])

    def stop(self, timeout: float = 8.0) -> None:
        """SIGTERM every process, wait up to ``timeout`` seconds, SIGKILL what is left."""
        procs = [self._procs[n].popen for n in self.names if n in self._procs]
        running = [p for p in procs if p is not None and p.poll() is None]
        for proc in running:
            _signal_group(proc, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for proc in running:
            try:
                proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _kill_group(proc)

    def __enter__(self) -> Stack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- administration -------------------------------------------------------------------
    def create_client(
        self,
        tenant: str,
        scopes: Sequence[str] | str,
        name: str,
        client_id: str | None = None,
        client_secret: str | None = None,
    ) -> dict[str, Any]:
        """Register an OAuth client in the gateway's database (its ``create-client`` command)."""
        scope_text = scopes if isinstance(scopes, str) else " ".join(scopes)
        args = ["--tenant", tenant, "--scopes", scope_text, "--name", name]
        if client_id is not None:
            args += ["--client-id", client_id]
        if client_secret is not None:
            args += ["--client-secret", client_secret]
        result = subprocess.run(
            [sys.executable, "-m", f"rateline_{GATEWAY}", "create-client", *args],
            env=self.env(GATEWAY),
            cwd=self.workdir,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if result.returncode != 0:
            raise StackError(
                f"create-client failed (exit code {result.returncode}):\n"
                f"{result.stderr.strip()[-3000:]}"
            )
        return parse_json_output(result.stdout)


def parse_json_output(stdout: str) -> dict[str, Any]:
    """The JSON object a command printed (the whole output, or its last JSON line)."""
    with contextlib.suppress(json.JSONDecodeError):
        value = json.loads(stdout)
        if isinstance(value, dict):
            return value
    for line in reversed(stdout.splitlines()):
        with contextlib.suppress(json.JSONDecodeError):
            value = json.loads(line)
            if isinstance(value, dict):
                return value
    raise StackError(f"expected a JSON object on stdout, got: {stdout[-500:]!r}")


def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    _signal_group(proc, signal.SIGKILL)
    proc.wait()
