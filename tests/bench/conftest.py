"""Fake servers with known timing, each in its own process, per test: an inference server
(HTTP) and a full-duplex speech server (WebSocket)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.serve._fixtures import free_port

FAKE = Path(__file__).with_name("fake_server.py")
FAKE_DUPLEX = Path(__file__).with_name("fake_duplex.py")


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


def start_duplex(*args: str) -> Fake:
    """``fake_duplex.py`` with ``args``, listening on a loopback port it chose."""
    proc = subprocess.Popen([sys.executable, str(FAKE_DUPLEX), *args], stdout=subprocess.PIPE,
                            text=True)  # fmt: skip
    assert proc.stdout is not None
    word, _, port = proc.stdout.readline().strip().partition(" ")
    assert word == "ready", f"fake duplex server did not start: {word!r}"
    return Fake(proc, f"ws://127.0.0.1:{port}")


@pytest.fixture
def fake_duplex() -> Iterator[Callable[..., Fake]]:
    started: list[Fake] = []

    def start(*args: str) -> Fake:
        fake = start_duplex(*args)
        started.append(fake)
        return fake

    yield start
    for fake in started:
        fake.stop()
