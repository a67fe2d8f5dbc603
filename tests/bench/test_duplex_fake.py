"""``run_duplex_bench`` against a fake full-duplex server whose timing is injected: the bench
measures what was injected, counts refused and queued sessions, and always ends.

Tolerance: injected delays are measured to within 40 ms. The client's clock starts before
the connection (a few ms on loopback), and on a busy 2-core machine an event loop can wake a
timer a little early or late; nothing here asserts how fast anything is, only that the
injected delays come back.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import Any

import pytest

from hfdeploy.bench import DuplexConfig, run_duplex_bench
from tests.bench.conftest import Fake

TOL_MS = 40.0


def near(measured: float | None, truth: float, tol: float = TOL_MS) -> bool:
    return measured is not None and abs(measured - truth) <= tol


def run(url: str, **kw: Any) -> dict[str, Any]:
    return run_duplex_bench(DuplexConfig(url, **kw)).to_dict()


def test_measures_injected_handshake_first_audio_and_stall(
    fake_duplex: Callable[..., Fake],
) -> None:
    fake = fake_duplex("--handshake-ms", "300", "--first-audio-ms", "200", "--stall-at", "0.8",
                       "--stall-ms", "400", "--text-every", "5")  # fmt: skip
    r = run(fake.url, duration=2.0, text_prompt="Be brief.", voice_prompt="NATF2.pt")
    row = r["phases"][0]["sessions"][0]
    assert row["outcome"] == "served", row
    assert near(row["handshake_ms"], 300), row["handshake_ms"]
    assert near(row["first_audio_ms"], 200), row["first_audio_ms"]
    # One gap of 400 ms instead of 80; the server's schedule stays 320 ms late after it.
    assert row["slow_frame_episodes"] == 1
    assert near(row["longest_gap_ms"], 400), row["longest_gap_ms"]
    assert near(row["drift_ms"], 320), row["drift_ms"]
    # Sends and arrivals are counted in whole frames: the backlog is known to one frame.
    assert near(row["backlog_growth_ms"], 320, 80 + TOL_MS), row["backlog_growth_ms"]
    assert row["realtime"] is False
    assert r["largest_realtime_sessions"] is None
    # 2 s of frames, one every 80 ms from the handshake, whatever the server did.
    assert row["audio_sent_s"] == 2.0
    assert row["audio_format"] == "pcm16"
    assert row["audio_received_s"] == pytest.approx(row["audio_messages"] * 0.08)
    # A token after every 5th frame; the one after the last frame may land after the window.
    assert row["audio_messages"] // 5 <= row["text_tokens"] <= row["audio_messages"] // 5 + 1
    assert row["text"].startswith(" w5 w10")
    # The prompts reached the server as query parameters (it sends them back as metadata).
    assert row["metadata"] == [{"text_prompt": "Be brief.", "voice_prompt": "NATF2.pt"}]
    assert r["config"]["ws_url"].endswith("/api/chat?text_prompt=Be+brief.&voice_prompt=NATF2.pt")


def test_one_session_server_queues_the_second(fake_duplex: Callable[..., Fake]) -> None:
    fake = fake_duplex("--one-session", "queue", "--ogg")
    r = run(fake.url, profile="concurrent:1,2", duration=1.0, handshake_timeout=5.0)
    one, two = (p["summary"] for p in r["phases"])
    assert (one["served"], one["queued"]) == (1, 0)
    assert (two["sessions"], two["served"], two["queued"]) == (2, 1, 1)
    assert two["realtime"] is False
    queued = next(s for s in r["phases"][1]["sessions"] if s["outcome"] == "queued")
    # It got its handshake once the other session's 1 s was over.
    assert queued["handshake_ms"] >= 1000 - TOL_MS
    assert r["largest_realtime_sessions"] != 2
    # Ogg pages: audio seconds from granule positions, 80 ms a page here.
    for s in r["phases"][0]["sessions"]:
        assert s["audio_format"] == "ogg-opus"
        assert s["audio_received_s"] == pytest.approx(s["audio_messages"] * 0.08)


@pytest.mark.parametrize(("mode", "kind"), [("refuse", "http_503"), ("close", "closed 1013")])
def test_refused_sessions_are_counted(
    fake_duplex: Callable[..., Fake], mode: str, kind: str
) -> None:
    fake = fake_duplex("--one-session", mode)
    s = run(fake.url, profile="concurrent:2", duration=1.0)["summary"]
    assert (s["served"], s["refused"], s["queued"]) == (1, 1, 0)
    assert s["refused_by_kind"] == {kind: 1}
    assert s["realtime"] is False


def test_a_server_that_never_answers_cannot_hang_the_bench(
    fake_duplex: Callable[..., Fake],
) -> None:
    fake = fake_duplex("--never-handshake")
    t0 = time.monotonic()
    r = run(fake.url, profile="concurrent:2", duration=30.0, handshake_timeout=1.0)
    # Bounded by the handshake wait plus closing, not by the 30 s of streaming asked for.
    assert time.monotonic() - t0 < 10
    s = r["summary"]
    assert (s["no_handshake"], s["served"], s["audio_sent_s"]) == (2, 0, 0.0)
    assert r["largest_realtime_sessions"] is None
    assert r["envelope"]["confidence"] == "low"
    # A listener that never answers the upgrade: the connection times out, counted as refused.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        s = run(f"ws://127.0.0.1:{port}", duration=30.0, handshake_timeout=0.5)["summary"]
    assert s["refused_by_kind"] == {"connect_timeout": 1}


def test_serialized_frames_lose_real_time_at_two_sessions(
    fake_duplex: Callable[..., Fake],
) -> None:
    # Each frame holds a lock shared by every session for 50 ms: one session fits in 80 ms,
    # two need 100 ms per frame each and fall 20 ms further behind at every frame.
    fake = fake_duplex("--frame-cost-ms", "50")
    r = run(fake.url, profile="concurrent:1,2", duration=1.5)
    one, two = (p["summary"] for p in r["phases"])
    assert near(one["drift_ms"]["max"], 0), one["drift_ms"]
    assert two["drift_ms"]["min"] > 160, two["drift_ms"]
    assert two["realtime"] is False
    assert r["largest_realtime_sessions"] == 1
    assert r["summary_phase"] == "concurrent:1"


def test_server_errors_and_closes_are_counted(fake_duplex: Callable[..., Fake]) -> None:
    fake = fake_duplex("--error-after", "3", "--close-after", "0.5")
    r = run(fake.url, duration=5.0)
    row = r["phases"][0]["sessions"][0]
    assert (row["errors"], row["error_messages"]) == (1, ["fake failure"])
    assert (row["closed_by_server"], row["close_code"]) == (True, 1011)
    assert row["realtime"] is False
    # The session ended with the server's close, not after the 5 s asked for.
    assert row["audio_sent_s"] < 2.0
    assert r["summary"]["error_messages"] == ["fake failure"]
