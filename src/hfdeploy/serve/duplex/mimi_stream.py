"""Mimi decoding one 80 ms frame at a time, for a batch of conversations.

Transformers' ``MimiModel.decode`` is offline: its decoder convolutions keep no state between
calls, so decoding a stream frame by frame is wrong at every frame boundary. This runs the same
modules (the model's own weights and layers, nothing re-implemented but the streaming state)
with, per row: the last ``padding_total`` inputs of each causal convolution (its left
context), the overlap-add tail of each transposed convolution, and the decoder transformer's
KV cache with the row's own positions and mask. Concatenated, the frames of a stream equal the
offline decode of the whole stream.

Rows join and leave between frames (:meth:`join`, :meth:`leave`): a joining row gets empty
state (silence before it, as the offline decode assumes) and its own positions from 0, so a
conversation's audio does not depend on who else is decoded beside it.
"""

from __future__ import annotations

from typing import Any

from hfdeploy.serve.duplex.rows import add_empty_row, keep_rows

__all__ = ["StreamingMimiDecoder", "StreamingMimiEncoder"]


class StreamingMimiDecoder:
    """Streaming decode for a ``transformers`` ``MimiModel`` (causal convolutions only)."""

    def __init__(self, mimi: Any) -> None:
        import torch
        from transformers.cache_utils import DynamicCache
        from transformers.models.mimi.modeling_mimi import MimiConv1d, MimiConvTranspose1d

        cfg = mimi.config
        if not cfg.use_causal_conv or cfg.trim_right_ratio != 1.0 or cfg.pad_mode != "constant":
            raise ValueError("streaming needs causal convolutions, trim_right_ratio 1 and "
                             "constant padding (Mimi's defaults)")  # fmt: skip
        self._torch = torch
        self._cache_type = DynamicCache
        self.mimi = mimi
        self.decoder = mimi.decoder
        self.config = cfg
        seanet = self.decoder.decoder_seanet
        self._convs = [m for m in seanet.modules() if isinstance(m, MimiConv1d)]
        self._convts = [m for m in seanet.modules() if isinstance(m, MimiConvTranspose1d)]
        if self.decoder.upsample is not None:
            self._convts.insert(0, self.decoder.upsample)
        self._conv_t = MimiConvTranspose1d
        self._conv = MimiConv1d
        self.rows = 0
        self._left: dict[int, Any] = {}
        self._tail: dict[int, Any] = {}
        self._cache: Any = None
        self._mask: Any = None  # [rows, steps]: 1 where the row had an input at that step
        self._pos: Any = None  # [rows]: the row's own next position

    # -- rows ------------------------------------------------------------------------------

    def _zeros(self, rows: int, channels: int, length: int) -> Any:
        p = next(self.mimi.parameters())
        return self._torch.zeros(rows, channels, length, dtype=p.dtype, device=p.device)

    def join(self) -> int:
        """Add a row with empty state; its index (rows are kept in join order)."""
        torch = self._torch
        for m in self._convs:
            pad = int(m.padding_total)
            self._left[id(m)] = torch.cat(
                [self._left[id(m)], self._zeros(1, m.in_channels, pad)]
            ) if id(m) in self._left else self._zeros(1, m.in_channels, pad)  # fmt: skip
        for m in self._convts:
            k, s = m.conv.kernel_size[0], m.conv.stride[0]
            new = self._zeros(1, m.conv.out_channels, k - s)
            self._tail[id(m)] = torch.cat([self._tail[id(m)], new]) if id(m) in self._tail else new
        if self._cache is not None:
            self._mask = add_empty_row(self._cache, self._mask)
            self._pos = torch.cat([self._pos, self._pos.new_zeros(1)])
        self.rows += 1
        return self.rows - 1

    def leave(self, row: int) -> None:
        """Drop a row; the rows after it move up by one."""
        keep = [i for i in range(self.rows) if i != row]
        index = self._torch.tensor(keep, dtype=self._torch.long)
        for key, t in self._left.items():
            self._left[key] = t[index]
        for key, t in self._tail.items():
            self._tail[key] = t[index]
        if self._cache is not None:
            self._mask = keep_rows(self._cache, self._mask, index)
            self._pos = self._pos[index]
        self.rows -= 1
        if self.rows == 0:  # the batch is empty: the next row starts a new timeline
            self._cache = self._mask = self._pos = None

    # -- one frame -------------------------------------------------------------------------

    def _conv1d(self, m: Any, x: Any) -> Any:
        pad = int(m.padding_total)
        padded = self._torch.cat([self._left[id(m)], x], dim=-1)
        if pad:
            self._left[id(m)] = padded[..., -pad:]
        return m.conv(padded)

    def _conv_transpose(self, m: Any, x: Any) -> Any:
        y = m.conv(x)
        s, overlap = m.conv.stride[0], m.conv.kernel_size[0] - m.conv.stride[0]
        y = self._torch.cat([y[..., :overlap] + self._tail[id(m)], y[..., overlap:]], dim=-1)
        n = x.shape[-1] * s
        tail = y[..., n:]
        if m.conv.bias is not None:  # the next frame's outputs add the bias again
            tail = tail - m.conv.bias[None, :, None]
        self._tail[id(m)] = tail
        return y[..., :n]

    def _seanet(self, x: Any) -> Any:
        for layer in self.decoder.decoder_seanet.layers:
            if isinstance(layer, self._conv):
                x = self._conv1d(layer, x)
            elif isinstance(layer, self._conv_t):
                x = self._conv_transpose(layer, x)
            elif hasattr(layer, "block"):  # a residual block: its convolutions, streamed
                h = x
                for sub in layer.block:
                    h = self._conv1d(sub, h) if isinstance(sub, self._conv) else sub(h)
                short = layer.shortcut
                x = (self._conv1d(short, x) if isinstance(short, self._conv) else short(x)) + h
            else:
                x = layer(x)
        return x

    def step(self, codes: Any) -> Any:
        """Decode one frame per row: ``codes`` [rows, codebooks, 1] → audio [rows, 1, 1920]."""
        torch = self._torch
        if codes.shape[0] != self.rows or codes.shape[-1] != 1:
            raise ValueError(
                f"expected [{self.rows}, codebooks, 1] codes, got {tuple(codes.shape)}"
            )
        latents = self.mimi.quantizer.decode(codes)
        up = self.decoder.upsample
        hidden = self._conv_transpose(up, latents) if up is not None else latents
        steps = hidden.shape[-1]
        if self._cache is None:
            self._cache = self._cache_type(config=self.config)
            self._mask = torch.zeros(self.rows, 0, dtype=torch.long, device=hidden.device)
            self._pos = torch.zeros(self.rows, dtype=torch.long, device=hidden.device)
        self._mask = torch.cat([self._mask, self._mask.new_ones(self.rows, steps)], dim=1)
        positions = self._pos[:, None] + torch.arange(steps, device=hidden.device)[None]
        out = self.decoder.decoder_transformer(
            hidden.transpose(1, 2), attention_mask=self._mask, position_ids=positions,
            cache=self._cache, use_cache=True,
        )  # fmt: skip
        self._cache = out.cache
        self._pos = self._pos + steps
        return self._seanet(out.last_hidden_state.transpose(1, 2))


class StreamingMimiEncoder:
    """Mimi encoding one frame per row for a batch of streams, with rows joining between
    frames. A row's first frame is encoded on its own (the downsampling convolution pads with
    the row's first value), then its state joins the batch: its convolution context, and its
    transformer cache entries at the newest positions with everything before them masked."""

    def __init__(self, mimi: Any, codebooks: int) -> None:
        import torch

        self._torch = torch
        self.mimi = mimi
        self.codebooks = codebooks
        cfg = mimi.config
        #: The encoder transformer's steps per frame: it runs before the downsampling
        #: (25 Hz for Mimi's 12.5 Hz frames).
        self.steps = round(cfg.encodec_frame_rate / cfg.frame_rate)
        self.rows = 0
        self._device = next(mimi.parameters()).device
        self._pending = 0  # rows that joined since the last frame (the last rows)
        self._padding: Any = None
        self._cache: Any = None
        self._mask: Any = None
        self._pos: Any = None
        self.latents: Any = None

    def join(self) -> int:
        self.rows += 1
        self._pending += 1
        return self.rows - 1

    def leave(self, row: int) -> None:
        if row >= self.rows - self._pending:  # left before its first frame
            self._pending -= 1
            self.rows -= 1
            return
        keep = [i for i in range(self.rows - self._pending) if i != row]
        index = self._torch.tensor(keep, dtype=self._torch.long)
        self._padding.padding_cache = [t[index] for t in self._padding.padding_cache]
        self._mask = keep_rows(self._cache, self._mask, index)
        self._pos = self._pos[index]
        self.rows -= 1
        if self.rows == 0:  # the batch is empty: the next row starts a new timeline
            self._padding = self._cache = self._mask = self._pos = None

    def _encode(self, pcm: Any, padding: Any, cache: Any, mask: Any, pos: Any) -> Any:
        torch = self._torch
        steps = self.steps
        positions = pos[:, None] + torch.arange(steps, device=pcm.device)[None]
        # The encoder model (not MimiModel.encode) so that the latents stay visible.
        return self.mimi.encoder(
            pcm, cache=cache, padding_cache=padding, use_streaming=True,
            attention_mask=mask, position_ids=positions,
        )  # fmt: skip

    def step(self, pcm: Any) -> Any:
        """One frame per row: ``pcm`` [rows, 1, 1920] → codes [rows, codebooks]."""
        torch = self._torch
        if pcm.shape[0] != self.rows:
            raise ValueError(f"expected {self.rows} rows of audio, got {pcm.shape[0]}")
        old = self.rows - self._pending
        steps = self.steps
        latents = []
        if old:
            self._mask = torch.cat([self._mask, self._mask.new_ones(old, steps)], dim=1)
            out = self._encode(pcm[:old], self._padding, self._cache, self._mask, self._pos)
            self._padding, self._cache = out.padding_cache, out.cache
            self._pos = self._pos + steps
            latents.append(out.latents)
        for r in range(old, self.rows):  # first frames, each alone, then merged in
            ones = torch.ones(1, steps, dtype=torch.long, device=pcm.device)
            zero = torch.zeros(1, dtype=torch.long, device=pcm.device)
            out = self._encode(pcm[r : r + 1], None, None, ones, zero)
            latents.append(out.latents)
            self._merge(out.padding_cache, out.cache)
        self._pending = 0
        #: The last frame's latents [rows, dim, 1], before quantization.
        self.latents = torch.cat(latents)
        codes = self.mimi.quantizer.encode(self.latents, self.codebooks).transpose(0, 1)
        return codes[..., 0]

    def _merge(self, padding: Any, cache: Any) -> None:
        torch, steps = self._torch, self.steps
        if self._cache is None:
            self._padding, self._cache = padding, cache
            self._mask = torch.ones(1, steps, dtype=torch.long, device=self._device)
            self._pos = torch.full((1,), steps, dtype=torch.long, device=self._device)
            return
        self._padding.padding_cache = [torch.cat([a, b]) for a, b in
                                       zip(self._padding.padding_cache, padding.padding_cache,
                                           strict=True)]  # fmt: skip
        for mine, theirs in zip(self._cache.layers, cache.layers, strict=True):
            pad = mine.keys.shape[-2] - theirs.keys.shape[-2]
            shape = (1, *theirs.keys.shape[1:-2], pad, theirs.keys.shape[-1])
            z = theirs.keys.new_zeros(shape)
            mine.keys = torch.cat([mine.keys, torch.cat([z, theirs.keys], dim=-2)])
            mine.values = torch.cat([mine.values, torch.cat([z.clone(), theirs.values], dim=-2)])
        row = self._mask.new_zeros(1, self._mask.shape[1])
        row[:, -steps:] = 1
        self._mask = torch.cat([self._mask, row])
        self._pos = torch.cat([self._pos, self._pos.new_full((1,), steps)])
