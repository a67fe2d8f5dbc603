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

__all__ = ["StreamingMimiDecoder"]


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
            for layer in self._cache.layers:
                if getattr(layer, "keys", None) is not None and layer.keys.numel():
                    z = torch.zeros_like(layer.keys[:1])
                    layer.keys = torch.cat([layer.keys, z])
                    layer.values = torch.cat([layer.values, z.clone()])
            self._mask = torch.cat([self._mask, self._mask.new_zeros(1, self._mask.shape[1])])
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
            self._cache.batch_select_indices(index)
            self._mask, self._pos = self._mask[index], self._pos[index]
        self.rows -= 1

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
