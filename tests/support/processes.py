"""Running the project's services as real processes, so tests can stop, kill and restart them."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx

from tests.support.stack import ROOT

VENV_BIN = ROOT / ".venv" / "bin"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Service:
    """One service process: ``cte-<name>`` from the workspace's virtual environment."""

    def __init__(self, command: str, env: dict[str, str], ready_url: str, log_dir: Path, name: str = "") -> None:
        self.command = command
        self.env = env
        self.ready_url = ready_url
        # A name of its own keeps two replicas of one command in separate logs.
        self.log_path = log_dir / f"{name or command}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> Service:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [str(VENV_BIN / self.command)],
            env={**os.environ, **self.env},
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.command} exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                if httpx.get(self.ready_url, timeout=1.0).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        tail = self.log_tail()
        self.stop()  # no fixture will: the caller never got the service
        raise RuntimeError(f"{self.command} not ready after {timeout} s:\n{tail}")

    def kill(self) -> None:
        """kill -9: no graceful shutdown, no offset commit, no flush."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"
