"""The duplex bench's pure parts: the URL and profile, the audio sent, Ogg timing, and the
metrics over sessions whose timestamps are written out here."""

from __future__ import annotations

import wave
from array import array
from pathlib import Path

import pytest

from hfdeploy.bench import DuplexConfig
from hfdeploy.bench import duplex_audio as audio_mod
from hfdeploy.bench.duplex_audio import load_wav, pick_encoder, tone
from hfdeploy.bench.duplex_config import chat_url, session_counts
from hfdeploy.bench.duplex_metrics import (
    SessionLog,
    classify,
    largest_realtime,
    phase_summary,
)
from hfdeploy.bench.ogg import OggClock
from hfdeploy.errors import InvalidSettingError, MissingDependencyError
from tests.bench.fake_duplex import ogg_page

# --- URL, profile, config -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://h:8998", "ws://h:8998/api/chat"),
        ("https://h", "wss://h/api/chat"),
        ("ws://h:1/api/chat", "ws://h:1/api/chat"),
        ("wss://h/moshi/", "wss://h/moshi/api/chat"),
        ("h:8998", "ws://h:8998/api/chat"),
        ("ws://h/api/chat?voice_prompt=a.pt", "ws://h/api/chat?voice_prompt=a.pt&text_prompt=x+y"),
    ],
)
def test_chat_url(url: str, expected: str) -> None:
    text = "x y" if "voice_prompt" in url else None
    assert chat_url(url, text_prompt=text) == expected


@pytest.mark.parametrize("url", ["ftp://h:21", "http://", "ws://h:99999", "ws://h:port"])
def test_chat_url_refuses_bad_urls(url: str) -> None:
    with pytest.raises(InvalidSettingError, match=r"not a ws://, wss://, http:// or https://"):
        chat_url(url)


def test_session_counts() -> None:
    assert session_counts("synchronous", 8) == [("synchronous", 1)]
    assert session_counts("concurrent:1,2,4", 8) == [
        ("concurrent:1", 1), ("concurrent:2", 2), ("concurrent:4", 4),
    ]  # fmt: skip
    for bad in ("poisson:2", "constant:1", "sweep", "throughput"):
        with pytest.raises(InvalidSettingError, match="holds N sessions open"):
            session_counts(bad, 8)
    with pytest.raises(InvalidSettingError, match="at least 1"):
        session_counts("concurrent:0", 8)
    with pytest.raises(InvalidSettingError, match="more than 8 sessions"):
        session_counts("concurrent:1,9", 8)


@pytest.mark.parametrize(
    ("kw", "flag"),
    [
        ({"duration": 0}, "--duration"),
        ({"duration": float("inf")}, "--duration"),
        ({"handshake_timeout": -1}, "--handshake-timeout"),
        ({"queue_after": -0.5}, "--queue-after"),
        ({"codec": "mp3"}, "--codec"),
        ({"profile": "poisson:1"}, "--profile"),
    ],
)
def test_config_is_checked_before_any_connection(kw: dict[str, object], flag: str) -> None:
    with pytest.raises(InvalidSettingError) as e:
        DuplexConfig("ws://127.0.0.1:1", **kw).validate()  # type: ignore[arg-type]
    assert e.value.name == flag


# --- audio ----------------------------------------------------------------------------------


def _wav(path: Path, samples: list[int], *, rate: int = 24_000, channels: int = 1,
         width: int = 2) -> Path:  # fmt: skip
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        if width == 2:
            w.writeframes(array("h", samples).tobytes())
        else:
            w.writeframes(bytes(s % 256 for s in samples))
    return path


def test_wav_at_24k_mono_is_sent_as_is(tmp_path: Path) -> None:
    samples = [(i * 7) % 30000 - 15000 for i in range(4800)]  # 0.2 s
    a = load_wav(_wav(tmp_path / "a.wav", samples))
    assert a.note == "24000 Hz mono"
    assert a.seconds == pytest.approx(0.24)  # padded to whole 80 ms frames
    assert array("h", a.pcm[: 2 * 4800]).tolist() == samples
    frames = a.frames()
    first = [next(frames) for _ in range(4)]
    assert all(len(f) == 3840 for f in first)
    assert first[3] == first[0]  # three frames, then from the start again


def test_wav_is_mixed_to_mono_and_resampled(tmp_path: Path) -> None:
    # A ramp, the same on both channels: linear interpolation keeps it a ramp.
    ramp = [i for i in range(8000) for _ in range(2)]
    a = load_wav(_wav(tmp_path / "s.wav", ramp, rate=16_000, channels=2))
    assert a.note == "24000 Hz mono; 2 channels mixed to mono, resampled from 16000 Hz (linear)"
    out = array("h", a.pcm)
    assert len(out) == 7 * 1920  # 0.5 s = 12,000 samples, padded to 7 whole frames
    assert [out[j] for j in (0, 3, 300, 11_997)] == [0, 2, 200, 7998]


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda p: _wav(p, [1, 2, 3], width=1), "8-bit samples"),
        (lambda p: _wav(p, [1, 2, 3], rate=4000), "sample rate 4000 Hz is outside"),
        (lambda p: _wav(p, []), "holds no audio"),
        (lambda p: p.write_bytes(b"RIFF\x00\x00not a wave file at all") and p, "not a PCM WAV"),
        (lambda p: p, "cannot read it"),
    ],
)
def test_bad_wav_files_are_clear_errors(tmp_path: Path, make: object, match: str) -> None:
    path = make(tmp_path / "x.wav")  # type: ignore[operator]
    with pytest.raises(InvalidSettingError, match=match) as e:
        load_wav(path)
    assert e.value.name == "--audio"


def test_tone_is_whole_frames() -> None:
    a = tone(1.0)
    assert a.seconds == pytest.approx(1.04)  # 13 frames of 80 ms
    assert max(array("h", a.pcm)) == round(0.25 * 32767)


def test_codec_without_sphn(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing() -> None:
        raise ModuleNotFoundError("No module named 'sphn'", name="sphn")

    monkeypatch.setattr(audio_mod, "_import_opus", missing)
    name, make, note = pick_encoder("auto")
    assert name == "pcm16"
    assert "sphn is not installed" in note
    assert make().encode(b"\x01\x02") == b"\x01\x02"
    assert pick_encoder("pcm")[0] == "pcm16"
    with pytest.raises(MissingDependencyError, match="sphn is needed to send Ogg-Opus"):
        pick_encoder("opus")


def test_opus_frames_are_timed_by_their_granules() -> None:
    pytest.importorskip("sphn")
    name, make, _ = pick_encoder("opus")
    assert name == "ogg-opus"
    enc, clock = make(), OggClock()
    frames = tone(0.4).frames()
    assert [clock.feed(enc.encode(next(frames))) for _ in range(5)] == [0.08] * 5


# --- Ogg ------------------------------------------------------------------------------------


def test_ogg_clock_counts_granule_advance() -> None:
    clock = OggClock()
    head = ogg_page(b"OpusHead" + bytes(11), 0, 0, bos=True) + ogg_page(b"OpusTags", 0, 1)
    assert clock.feed(head) == 0.0
    assert clock.feed(ogg_page(bytes(50), 1920, 2) + ogg_page(bytes(50), 3840, 3)) == 0.08
    page = ogg_page(bytes(100), 7680, 4)
    assert clock.feed(page[:30]) == 0.0  # a page split over two messages counts when whole
    assert clock.feed(page[30:]) == 0.08
    assert clock.feed(ogg_page(bytes(10), -1, 5)) == 0.0  # no packet ends on this page
    # A new stream starts again from zero.
    assert clock.feed(ogg_page(b"OpusHead" + bytes(11), 0, 0, bos=True)) == 0.0
    assert clock.feed(ogg_page(bytes(10), 3840, 1)) == 0.08
    assert clock.pages == 8
    with pytest.raises(ValueError, match="not an Ogg page"):
        clock.feed(b"RIFF" + bytes(40))


# --- metrics --------------------------------------------------------------------------------

F = 0.08


def _log(arrivals: list[float], *, step: float = F, index: int = 0, hs: float = 10.0,
         duration: float = 2.0, **kw: object) -> SessionLog:  # fmt: skip
    log = SessionLog(index, t0=hs - 0.05, opened=hs - 0.04, handshake=hs,
                     deadline=hs + duration, end=hs + duration + 0.01, **kw)  # type: ignore[arg-type]  # fmt: skip
    log.audio = [(t, step) for t in arrivals]
    log.sends = [(hs + k * F, hs + k * F + 0.001) for k in range(round(duration / F))]
    return log


def _steady(first: float = 10.1, n: int = 24, step: float = F) -> list[float]:
    return [first + k * step for k in range(n)]


def test_a_steady_stream_is_real_time() -> None:
    summary, [row] = phase_summary([_log(_steady())], queue_after=1.0)
    assert row["outcome"] == "served"
    assert row["realtime"] is True
    assert row["handshake_ms"] == 50.0
    assert row["first_audio_ms"] == 100.0
    assert row["jitter_ms"]["max"] == pytest.approx(0.0, abs=1e-6)
    assert row["slow_frame_episodes"] == 0
    assert row["drift_ms"] == pytest.approx(0.0, abs=1e-6)
    assert summary["realtime"] is True
    assert summary["audio_received_s"] == pytest.approx(24 * F)


def test_two_frames_per_message_are_judged_by_what_they_carry() -> None:
    _, [row] = phase_summary([_log(_steady(n=12, step=2 * F), step=2 * F)], queue_after=1.0)
    assert row["inter_arrival_ms"]["p50"] == pytest.approx(160.0)
    assert row["jitter_ms"]["p95"] == pytest.approx(0.0, abs=1e-6)
    assert row["realtime"] is True


def test_a_stall_is_an_episode_and_drift() -> None:
    times = _steady(n=10) + [t + 0.32 for t in _steady(10.1 + 10 * F, 10)]
    _, [row] = phase_summary([_log(times)], queue_after=1.0)
    assert row["slow_frame_episodes"] == 1
    assert row["longest_gap_ms"] == pytest.approx(400.0)
    assert row["drift_ms"] == pytest.approx(320.0)
    assert row["realtime"] is False


def test_silence_until_the_end_counts() -> None:
    # Audio stops 1 s before the window ends: an open episode, and the stream is late.
    _, [row] = phase_summary([_log(_steady(n=11))], queue_after=1.0)
    assert row["slow_frame_episodes"] == 1
    assert row["drift_ms"] == pytest.approx((12.0 - (10.1 + 10 * F)) * 1000 - 80.0)
    assert row["realtime"] is False


def test_a_server_close_ends_the_window_and_real_time() -> None:
    log = _log(_steady(n=10), closed_by_server=True, closed_at=10.1 + 9 * F + 0.01)
    _, [row] = phase_summary([log], queue_after=1.0)
    assert row["slow_frame_episodes"] == 0  # the window ended at the close
    assert row["realtime"] is False


def test_outcomes() -> None:
    served = _log(_steady(), index=0)
    late = _log(_steady(13.1), index=1, hs=13.0)
    late.t0 = served.t0
    waiting = SessionLog(2, t0=served.t0, end=12.5)
    refused = SessionLog(3, t0=served.t0, end=9.96, connect_error="http_503")
    closed = SessionLog(4, t0=served.t0, opened=9.96, end=9.97, closed_by_server=True,
                        close_code=1013)  # fmt: skip
    silent = _log([], index=5)
    logs = [served, late, waiting, refused, closed, silent]
    assert classify(logs, 1.0) == ["served", "queued", "queued", "refused", "refused", "no_audio"]
    # Alone, a session without a handshake waited for nothing: not queued.
    assert classify([SessionLog(0, t0=1.0, end=2.0)], 1.0) == ["no_handshake"]
    summary, _ = phase_summary(logs, queue_after=1.0)
    assert summary["refused_by_kind"] == {"http_503": 1, "closed 1013": 1}
    assert (summary["queued"], summary["realtime_sessions"], summary["realtime"]) == (2, 1, False)


@pytest.mark.parametrize(
    ("phases", "largest"),
    [
        ([(1, True), (2, True), (4, False)], 2),
        ([(1, False), (2, True)], None),
        ([(2, True), (1, True), (2, False)], 1),
        ([(4, True), (1, True), (2, True)], 4),
        ([], None),
    ],
)
def test_largest_realtime(phases: list[tuple[int, bool]], largest: int | None) -> None:
    assert largest_realtime(phases) == largest
