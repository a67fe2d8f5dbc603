"""A fake inference server with known timing, in its own process, per test."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.serve._fixtures import free_port

FAKE = Path(__file__).with_name("fake_server.py")


class Fake:
    def __init__(self, proc: subprocess.Popen[str], url: str) -> None:
        self.proc = proc
        self.url = url

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()

    @property
    def pid(self) -> int:
        return self.proc.pid


def start_fake(*args: str) -> Fake:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, str(FAKE), "--port", str(port), *args],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.strip() == "ready", f"fake server did not start: {line!r}"
    return Fake(proc, f"http://127.0.0.1:{port}")


@pytest.fixture
def fake_server() -> Iterator[Callable[..., Fake]]:
    started: list[Fake] = []

    def start(*args: str) -> Fake:
        fake = start_fake(*args)
        started.append(fake)
        return fake

    yield start
    for fake in started:
        fake.stop()
