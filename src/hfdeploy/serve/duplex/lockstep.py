"""One Moshi step for every conversation at once: the temporal transformer and the depth
transformer of Transformers' ``MoshiForConditionalGeneration``, stepped in lockstep.

Each conversation is a row. Rows join and leave between steps. A joining row gets an empty
past: a zero row in the shared KV cache and a zero row in the attention mask, so it attends
only to its own frames, at its own positions. Sampling is per row, with the row's own
settings and noise drawn from a generator seeded by (the row's seed, its frame, the
stream), never the global RNG. So a conversation's tokens do not depend on which other
conversations are stepped beside it; batching changes the cost, not the answers.

Token layout (Moshi's acoustic delay, as Kyutai's ``LMGen`` steps it): text and codebook 0
are not delayed; codebooks 1..K-1 of both audio streams are one frame late. Step ``s``
takes what step ``s - 1`` gave (text, codebooks 0..K-1), the user's codebook 0 of frame
``s`` and the user's codebooks 1..K-1 of frame ``s - 1``; it gives the text token and
codebook 0 of frame ``s``, and codebooks 1..K-1 of frame ``s - 1``. A stream whose value
would come from before the first frame takes the initial token instead: everything at
step 0 (so the user's frame 0 is never read), the delayed codebooks at step 1. A frame's
codes are complete, and sent with its text token, one step after its codebook 0: step 0
gives nothing (warm-up).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hfdeploy.serve.duplex.forced import ForcedTokens
from hfdeploy.serve.duplex.rows import add_empty_row, keep_rows

__all__ = ["LockstepLM", "Sampling", "StepOutput"]

_MIX = (1_000_003, 7_919, 104_729)


@dataclass(frozen=True, slots=True)
class Sampling:
    """A conversation's sampling: temperature 0 is greedy."""

    temp: float = 0.8
    top_k: int = 250
    temp_text: float = 0.7
    top_k_text: int = 25
    seed: int = 0


@dataclass(frozen=True, slots=True)
class StepOutput:
    """One row's step: its frame's text token and audio codes (both None at warm-up and
    during a prompt); ``ready`` on a prompted row's first frame that is the conversation's
    (the prompt's last: the reference sends it after the handshake)."""

    text: int | None
    codes: list[int] | None
    ready: bool = False


@dataclass(slots=True)
class _Row:
    sampling: Sampling
    frame: int
    text: int  # the text token the next step takes
    moshi: list[int]  # the delayed Moshi codes the next step takes
    user_prev: list[int]  # the user's codes of the previous frame (for the delayed ones)
    forced: ForcedTokens | None = None


class LockstepLM:
    """The temporal and depth steps for a batch of conversations (rows)."""

    def __init__(self, model: Any) -> None:
        import torch
        from transformers.cache_utils import DynamicCache

        self._torch = torch
        self._cache_type = DynamicCache
        self.model = model
        cfg = model.config
        self.config = cfg
        self.codebooks = int(cfg.num_codebooks)
        self.text_start = int(cfg.vocab_size)  # the initial text token
        self.audio_start = int(cfg.audio_vocab_size)  # the initial (and BOS) audio token
        self.rows: list[_Row] = []
        self._cache: Any = None
        self._mask: Any = None
        self._device = next(model.parameters()).device

    # -- rows ------------------------------------------------------------------------------

    def join(self, sampling: Sampling | None = None, forced: ForcedTokens | None = None) -> int:
        """Add a conversation with an empty past (and its prompt's forced tokens); its row
        (rows are kept in join order)."""
        k = self.codebooks
        self.rows.append(_Row(sampling or Sampling(), 0, self.text_start, [self.audio_start] * k,
                              [self.audio_start] * k, forced))  # fmt: skip
        if self._cache is not None:
            self._mask = add_empty_row(self._cache, self._mask)
        return len(self.rows) - 1

    def leave(self, row: int) -> None:
        """Drop a conversation; the rows after it move up by one."""
        del self.rows[row]
        if not self.rows:  # the batch is empty: the next conversation starts a new timeline
            self._cache = self._mask = None
        if self._cache is not None:
            keep = self._torch.tensor(
                [i for i in range(len(self.rows) + 1) if i != row], dtype=self._torch.long
            )
            self._mask = keep_rows(self._cache, self._mask, keep)

    # -- sampling --------------------------------------------------------------------------

    def _generator(self, seed: int, frame: int, stream: int) -> Any:
        value = (seed * _MIX[0] + frame * _MIX[1] + stream * _MIX[2]) % (2**63 - 1)
        return self._torch.Generator(device=self._device).manual_seed(value)

    def _sample(self, logits: Any, temps: list[float], top_ks: list[int], stream: int) -> Any:
        """One token per row, each row with its own settings and noise, drawn together: one
        top-k over the widest k (a row's entries past its own k masked out), one softmax,
        one argmax; only each row's noise is its own draw (its generator, its k values),
        so a row gets the same token whatever rows are beside it."""
        torch = self._torch
        out = logits.argmax(-1)  # greedy rows (temperature 0)
        hot = [i for i, t in enumerate(temps) if t > 0]
        if not hot:
            return out
        width = logits.shape[-1]
        ks = [min(top_ks[i], width) for i in hot]
        values, index = logits[hot].topk(max(ks), dim=-1)
        keep = (
            torch.arange(values.shape[-1], device=self._device)[None]
            < torch.tensor(ks, device=self._device)[:, None]
        )
        t = torch.tensor([temps[i] for i in hot], dtype=values.dtype, device=self._device)
        probs = torch.softmax((values / t[:, None]).masked_fill(~keep, float("-inf")), dim=-1)
        noise = torch.ones_like(probs)  # masked entries have probability 0: any noise will do
        for j, (i, k) in enumerate(zip(hot, ks, strict=True)):
            row = self.rows[i]
            g = self._generator(row.sampling.seed, row.frame, stream)
            noise[j, :k] = torch.empty(k, dtype=probs.dtype, device=self._device).exponential_(
                1.0, generator=g
            )
        choice = (probs / noise).argmax(-1, keepdim=True)
        out[hot] = index.gather(1, choice)[:, 0]
        return out

    # -- one step --------------------------------------------------------------------------

    def prompting(self, row: int) -> bool:
        """Whether the row's next step is still its prompt's (it reads no user audio)."""
        r = self.rows[row]
        return r.forced is not None and r.frame < r.forced.length

    def _inputs(self, user: list[list[int]]) -> tuple[list[int], list[list[int]], list[list[int]]]:
        """Each row's text, model codes and user codes (delayed) for this step: step 0 reads
        the initial token everywhere, step 1 in the delayed streams; a forced token replaces
        the row's own elsewhere."""
        k, start = self.codebooks, self.audio_start
        texts, moshis, users = [], [], []
        for row, codes in zip(self.rows, user, strict=True):
            if row.frame == 0:
                texts.append(self.text_start)
                moshis.append([start] * k)
                users.append([start] * k)
                continue
            t, m, u = row.text, list(row.moshi), [codes[0], *row.user_prev[1:]]
            if row.forced is not None and (at := row.forced.at(row.frame)):
                late = row.frame == 1  # the delayed streams still read the initial token
                t = at.get(0, t)
                m = [m[c] if late and c else at.get(1 + c, m[c]) for c in range(k)]
                u = [u[c] if late and c else at.get(1 + k + c, u[c]) for c in range(k)]
            texts.append(t)
            moshis.append(m)
            users.append(u)
        return texts, moshis, users

    def _forward(self, texts: list[int], moshis: list[list[int]], users: list[list[int]]) -> Any:
        """The temporal transformer's step; rows replaying a saved prompt take its input
        embedding instead of their tokens'."""
        torch, n, dev = self._torch, len(self.rows), self._device
        text = torch.tensor([[t] for t in texts], device=dev)
        moshi = torch.tensor(moshis, device=dev)[..., None]
        user = torch.tensor(users, device=dev)[..., None]
        if self._cache is None:
            self._cache = self._cache_type(config=self.config)
            self._mask = torch.zeros(n, 0, dtype=torch.long, device=dev)
        self._mask = torch.cat([self._mask, self._mask.new_ones(n, 1)], dim=1)
        positions = torch.tensor([[r.frame] for r in self.rows], device=dev)
        common = {"cache": self._cache, "use_cache": True, "attention_mask": self._mask,
                  "decoder_position_ids": positions}  # fmt: skip
        replay = {i: r.forced.embeds[r.frame] for i, r in enumerate(self.rows)
                  if r.forced is not None and r.frame in r.forced.embeds}  # fmt: skip
        if not replay:
            return self.model(input_ids=text, user_audio_codes=user, moshi_audio_codes=moshi,
                              **common)  # fmt: skip
        # The model's own embedding sum (its order: the audio codebooks, then the text).
        codes = torch.cat([moshi, user], dim=1)
        embeds = sum(self.model.embed_tokens[c](codes[:, c]) for c in range(codes.shape[1]))
        embeds = embeds + self.model.decoder.model.embed_tokens(text)
        for i, e in replay.items():
            embeds[i] = e.to(device=dev, dtype=embeds.dtype).reshape(embeds[i].shape)
        return self.model(inputs_embeds=embeds, **common)

    def step(self, user_codes: Any) -> list[StepOutput]:
        """One frame for every row: ``user_codes`` [rows, codebooks], the user's codes of each
        row's current frame (any, for a row still in its prompt) → each row's text token and
        (after warm-up) its frame's codes."""
        torch = self._torch
        n, k = len(self.rows), self.codebooks
        if tuple(user_codes.shape) != (n, k):
            raise ValueError(f"expected [{n}, {k}] user codes, got {tuple(user_codes.shape)}")
        user = user_codes.long().tolist()
        out = self._forward(*self._inputs(user))
        self._cache = out.cache
        s = [r.sampling for r in self.rows]
        text_next = self._sample(out.logits[:, -1], [x.temp_text for x in s],
                                 [x.top_k_text for x in s], stream=0)  # fmt: skip
        hidden = out.last_hidden_state[:, -1:]
        depth_cache = self._cache_type(config=self.model.depth_decoder.config)
        ids = text_next[:, None]
        forced_next = [self._target(r) for r in self.rows]
        if any(0 in f for f in forced_next):  # the depth steps are conditioned on the text
            given = zip(forced_next, text_next.tolist(), strict=True)
            ids = torch.tensor([[f.get(0, t)] for f, t in given], device=ids.device)
        codes = []
        for book in range(k):
            o = self.model.depth_decoder(input_ids=ids, last_hidden_state=hidden,
                                         cache=depth_cache, use_cache=True)  # fmt: skip
            depth_cache = o.cache
            ids = self._sample(o.logits[:, -1], [x.temp for x in s], [x.top_k for x in s],
                               stream=1 + book)[:, None]  # fmt: skip
            forced = [f.get(1 + book) for f in forced_next]
            if any(t is not None for t in forced):  # a prompt's token is the next step's input
                given = torch.tensor([[-1 if t is None else t] for t in forced], device=ids.device)
                ids = torch.where(given >= 0, given, ids)
            codes.append(ids[:, 0])
        # cb0 of this frame, cb1.. of the last; to the host once (not a sync per token).
        produced = torch.stack(codes, dim=1).tolist()
        return self._advance(text_next.tolist(), produced, forced_next, user)

    def _target(self, row: _Row) -> dict[int, int]:
        """The forced tokens of the position this step gives (a prompted row's): at step 0,
        the delayed streams hold the initial token (as LMGen forces them)."""
        if row.forced is None:
            return {}
        at = dict(row.forced.at(row.frame + 1))
        if row.frame == 0:
            k = self.codebooks
            at |= {s: self.audio_start for c in range(1, k) for s in (1 + c, 1 + k + c)}
        return at

    def _advance(
        self,
        texts: list[int],
        produced: list[list[int]],
        forced_next: list[dict[int, int]],
        users: list[list[int]],
    ) -> list[StepOutput]:
        """Each row's output, and its state for the next step."""
        k, results = self.codebooks, []
        for i, row in enumerate(self.rows):
            texts[i] = forced_next[i].get(0, texts[i])
            if row.frame == 0:  # cb1.. of frame -1 and the user's frame 0: never read
                produced[i][1:] = [self.audio_start] * (k - 1)
                users[i] = [self.audio_start] * k
                out = StepOutput(None, None)
            else:  # the last frame: its text and cb0 from the last step, cb1.. from this one
                out = StepOutput(row.text, [row.moshi[0], *produced[i][1:]])
            if row.forced is not None and row.forced.length:
                last = row.forced.length - 1  # the prompt's last frame is sent: its output
                out = (StepOutput(out.text, out.codes, ready=True) if row.frame == last
                       else out if row.frame > last else StepOutput(None, None))  # fmt: skip
            results.append(out)
            row.text, row.moshi, row.user_prev = texts[i], produced[i], users[i]
            row.frame += 1
        return results
