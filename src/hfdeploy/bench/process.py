"""Server processes the measurements start and stop: one way to spawn, probe and stop them.

A spawned server gets a session of its own, so that stopping it reaches its children too
(uvicorn workers, Ray, a shell's engine) and a Ctrl-C meant for hfdeploy does not hit it
first: hfdeploy stops it, in order, after the measurement.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
from pathlib import Path

__all__ = ["listening", "spawn", "stop"]


def spawn(command: list[str], *, log: Path | None = None) -> subprocess.Popen[bytes]:
    """Start ``command`` in a new session; stdout and stderr go to ``log`` when given."""
    if log is None:
        return subprocess.Popen(command, start_new_session=True)
    with log.open("wb") as sink:
        return subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT,
                                start_new_session=True)  # fmt: skip


def stop(proc: subprocess.Popen[bytes], *, grace: float) -> int | None:
    """SIGTERM to the process group, SIGKILL after ``grace`` seconds; the exit code."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return proc.returncode


def listening(host: str, port: int) -> bool:
    """Whether something accepts TCP connections at ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False
