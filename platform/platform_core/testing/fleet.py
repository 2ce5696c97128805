"""The processes of a deployment under test or benchmark, started, stopped and killed by pid.

Each process runs in a process group of its own (so its children, Celery's pool or
Daphne's, go with it), writes its output to `<run_dir>/<role>.log` and has its pid in
`<run_dir>/<role>.pid`. Stopping and killing go through that pid, never by name: other
work runs on the same machine.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Proc:
    role: str
    argv: list[str]
    env: dict[str, str]
    popen: subprocess.Popen[bytes]
    log: Path
    pid_file: Path = field(repr=False)

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


class Fleet:
    """The subprocesses of one run. `app_prefix` names their PostgreSQL connections
    (`application_name` = prefix + role), so a run can tell whose a backend is."""

    def __init__(
        self,
        env: Mapping[str, str],
        run_dir: Path,
        *,
        root: Path,
        app_prefix: str = "fleet:",
    ) -> None:
        self.env, self.run_dir, self.root, self.app_prefix = dict(env), run_dir, root, app_prefix
        self.procs: list[Proc] = []

    def start(
        self, role: str, argv: Sequence[str], extra_env: Mapping[str, str] | None = None
    ) -> Proc:
        log = self.run_dir / f"{role.replace(' ', '-')}.log"
        env = {**self.env, "PGAPPNAME": f"{self.app_prefix}{role}", **(extra_env or {})}
        popen = subprocess.Popen(
            list(argv),
            cwd=self.root,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        pid_file = log.with_suffix(".pid")
        pid_file.write_text(f"{popen.pid}\n")
        proc = Proc(role, list(argv), env, popen, log, pid_file)
        self.procs.append(proc)
        return proc

    def manage(self, role: str, *args: str, extra_env: Mapping[str, str] | None = None) -> Proc:
        return self.start(role, [sys.executable, str(self.root / "manage.py"), *args], extra_env)

    def run(self, role: str, *args: str, timeout: float = 180) -> str:
        """A management command to completion; its output."""
        proc = self.manage(role, *args)
        try:
            code = proc.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop(proc)
            raise RuntimeError(f"{role} did not finish in {timeout:.0f} s") from None
        self._forget(proc)
        if code != 0:
            raise RuntimeError(f"{role} failed ({code}):\n{proc.tail()}")
        return proc.log.read_text(errors="replace")

    def check_alive(self) -> None:
        for proc in self.procs:
            code = proc.popen.poll()
            if code is not None:
                raise RuntimeError(f"{proc.role} exited ({code}):\n{proc.tail()}")

    def stop(self, *procs: Proc, grace: float = 10.0) -> None:
        """SIGTERM each one's process group, wait up to `grace`, then SIGKILL."""
        targets = list(procs) or list(self.procs)
        for proc in targets:
            if proc.alive:
                self._signal(proc, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for proc in targets:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.popen.wait(timeout=max(0.1, deadline - time.monotonic()))
            self.kill(proc)

    def kill(self, proc: Proc) -> None:
        """SIGKILL the process group, as the OOM killer or a lost machine would."""
        self._signal(proc, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.popen.wait(timeout=5)
        self._forget(proc)

    def restart(self, proc: Proc) -> Proc:
        """Start `proc`'s command again (after it was stopped or killed)."""
        if proc.alive:
            self.stop(proc)
        return self.start(proc.role, proc.argv, proc.env)

    def _signal(self, proc: Proc, signum: int) -> None:
        pid = int(proc.pid_file.read_text()) if proc.pid_file.exists() else proc.pid
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signum)

    def _forget(self, proc: Proc) -> None:
        if proc in self.procs:
            self.procs.remove(proc)
        proc.pid_file.unlink(missing_ok=True)


def recreate_vhost(vhost: str, user: str = "guest") -> None:
    """A RabbitMQ virtual host of the run's own (deleted first if a run left it): other
    workers and tests on this server use the same queue names in "/" and purge them.
    Needs `rabbitmqctl` (the server's own machine, as root)."""
    delete_vhost(vhost)
    ctl = _rabbitmqctl()
    subprocess.run([ctl, "-q", "add_vhost", vhost], check=True, timeout=60)
    permissions = [ctl, "-q", "set_permissions", "-p", vhost, user, ".*", ".*", ".*"]
    subprocess.run(permissions, check=True, timeout=60)


def delete_vhost(vhost: str) -> None:
    """Delete a virtual host, with its queues, if it is there."""
    ctl = _rabbitmqctl()
    listed = subprocess.run([ctl, "-q", "list_vhosts"], capture_output=True, text=True, timeout=60)
    if vhost in listed.stdout.split():
        subprocess.run([ctl, "-q", "delete_vhost", vhost], check=True, timeout=60)


def queued(vhost: str) -> dict[str, int]:
    """The messages in each queue of `vhost`, ready or delivered and not yet acknowledged
    (a retry a worker holds until its countdown ends is one)."""
    command = ["-q", "list_queues", "-p", vhost, "--no-table-headers", "name", "messages"]
    listed = subprocess.run(
        [_rabbitmqctl(), *command],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return {
        name: int(count)
        for name, count in (line.split("\t") for line in listed.stdout.splitlines())
    }


def _rabbitmqctl() -> str:
    ctl = shutil.which("rabbitmqctl")
    if ctl is None:
        raise RuntimeError("rabbitmqctl not found: cannot manage RabbitMQ vhosts")
    return ctl
