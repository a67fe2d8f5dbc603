"""How much audio each message of an Ogg stream carries, from its pages' granule positions.

No decoding: an Ogg page header says, in its granule position, how many samples the stream
holds up to the end of the page (48 kHz for Opus, whatever the input rate). Page layout:
``OggS``, version 0, header type, granule (int64 LE), serial, sequence, CRC, segment count,
segment table, body.
"""

from __future__ import annotations

__all__ = ["OPUS_GRANULE_RATE", "OggClock", "is_ogg"]

#: Ogg-Opus granule positions count 48 kHz samples.
OPUS_GRANULE_RATE = 48_000
_HEADER = 27
_BOS = 0x02


def is_ogg(data: bytes) -> bool:
    return data[:4] == b"OggS"


class OggClock:
    """Feed the bytes of one Ogg stream as they come; each call returns the seconds of audio
    that the pages completed by those bytes add (a page split over messages counts when
    its last byte arrives). The pre-skip is not subtracted: it is the codec's priming, paced
    like the rest of the stream. A page that starts a new stream resets the count."""

    def __init__(self, rate: int = OPUS_GRANULE_RATE) -> None:
        self._rate = rate
        self._buf = b""
        self._granule = 0
        self.pages = 0

    def feed(self, data: bytes) -> float:
        """Seconds of audio that ``data`` completes.

        Raises:
            ValueError: the bytes are not Ogg pages.
        """
        buf = self._buf + data
        off, advance = 0, 0
        while len(buf) - off >= _HEADER:
            if buf[off : off + 4] != b"OggS" or buf[off + 4] != 0:
                self._buf = b""
                raise ValueError(f"not an Ogg page at byte {off}")
            n_seg = buf[off + 26]
            if len(buf) < off + _HEADER + n_seg:
                break
            end = off + _HEADER + n_seg + sum(buf[off + _HEADER : off + _HEADER + n_seg])
            if len(buf) < end:
                break
            if buf[off + 5] & _BOS:
                self._granule = 0
            granule = int.from_bytes(buf[off + 6 : off + 14], "little", signed=True)
            # -1: no packet ends on this page.
            if granule > self._granule:
                advance += granule - self._granule
                self._granule = granule
            self.pages += 1
            off = end
        self._buf = buf[off:]
        return advance / self._rate
