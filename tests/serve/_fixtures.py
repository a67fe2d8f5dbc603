"""Tiny serving models (random weights, real formats) and a real uvicorn in a thread.

Text models reuse the bundled MiniLM's WordPiece tokenizer, so their inputs tokenize
as a real model's would; the speech model gets a byte-level BPE tokenizer with
Whisper's special tokens, trained on the spot.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

__all__ = ["build_serving_models", "free_port", "running", "serving", "wait_ready"]

#: The ``hfdeploy`` command of the interpreter running the tests.
HFDEPLOY = str(Path(sys.executable).with_name("hfdeploy"))

CHAT_TEMPLATE = (
    "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}assistant:{% endif %}"
)


def _bert_config(**kwargs: Any) -> Any:
    from transformers import BertConfig

    return BertConfig(
        vocab_size=30522, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=2, max_position_embeddings=512, **kwargs,
    )  # fmt: skip


def build_serving_models(root: Path, minilm: Path) -> dict[str, Path]:
    """Save a reranker, a classifier, a token classifier, a generator and a speech model."""
    import torch
    from transformers import (
        AutoTokenizer,
        BertForSequenceClassification,
        BertForTokenClassification,
        LlamaConfig,
        LlamaForCausalLM,
    )

    tokenizer = AutoTokenizer.from_pretrained(minilm)
    out: dict[str, Path] = {}
    torch.manual_seed(0)
    specs: dict[str, Any] = {
        "reranker": BertForSequenceClassification(_bert_config(num_labels=1)),
        "classifier": BertForSequenceClassification(
            _bert_config(num_labels=3, id2label={0: "negative", 1: "neutral", 2: "positive"},
                         label2id={"negative": 0, "neutral": 1, "positive": 2})
        ),
        "ner": BertForTokenClassification(
            _bert_config(num_labels=3, id2label={0: "O", 1: "B-PER", 2: "I-PER"},
                         label2id={"O": 0, "B-PER": 1, "I-PER": 2})
        ),
    }  # fmt: skip
    for name, model in specs.items():
        folder = root / name
        model.eval().save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        out[name] = folder

    gen_tok = AutoTokenizer.from_pretrained(minilm)
    gen_tok.eos_token = "[SEP]"
    gen_tok.chat_template = CHAT_TEMPLATE
    llama = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=30522, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
            num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=256,
            bos_token_id=gen_tok.cls_token_id, eos_token_id=gen_tok.sep_token_id,
            pad_token_id=gen_tok.pad_token_id, tie_word_embeddings=False,
        )
    )  # fmt: skip
    folder = root / "generator"
    llama.eval().save_pretrained(folder)
    gen_tok.save_pretrained(folder)
    out["generator"] = folder
    out["speech"] = _build_whisper(root / "speech")
    return out


def _build_whisper(folder: Path) -> Path:
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import (
        WhisperConfig,
        WhisperFeatureExtractor,
        WhisperForConditionalGeneration,
        WhisperProcessor,
        WhisperTokenizerFast,
    )

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    bpe.train_from_iterator(["hello world, the quick brown fox"] * 10, trainer)
    eot = "<|endoftext|>"
    tok = WhisperTokenizerFast(
        tokenizer_object=bpe, bos_token=eot, eos_token=eot, unk_token=eot, pad_token=eot
    )
    specials = ["<|startoftranscript|>", "<|en|>", "<|transcribe|>", "<|notimestamps|>"]
    tok.add_special_tokens({"additional_special_tokens": specials})
    ids = {t: tok.convert_tokens_to_ids(t) for t in specials}
    config = WhisperConfig(
        vocab_size=len(tok), d_model=32, encoder_layers=1, decoder_layers=1,
        encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=32,
        decoder_ffn_dim=32, max_source_positions=1500, max_target_positions=64,
        num_mel_bins=80, pad_token_id=tok.eos_token_id, bos_token_id=tok.eos_token_id,
        eos_token_id=tok.eos_token_id, decoder_start_token_id=ids["<|startoftranscript|>"],
        begin_suppress_tokens=None, suppress_tokens=None,
    )  # fmt: skip
    torch.manual_seed(0)
    WhisperForConditionalGeneration(config).eval().save_pretrained(folder)
    WhisperProcessor(
        feature_extractor=WhisperFeatureExtractor(feature_size=80), tokenizer=tok
    ).save_pretrained(folder)
    return folder


def copy_model(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def free_port() -> int:
    """A port nothing listens on right now, on loopback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(url: str, *, timeout: float = 120.0, headers: dict[str, str] | None = None) -> None:
    """Poll ``/ready`` until 200; fail with the server's last answer."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            r = httpx.get(url + "/ready", timeout=5, headers=headers)
            if r.status_code == 200:
                return
            last = r.json()
            if last.get("status") == "failed":
                break
        except httpx.TransportError as e:
            last = e
        time.sleep(0.1)
    raise AssertionError(f"server at {url} not ready: {last}")


@contextmanager
def running(app: Any, *, ready: bool = True) -> Iterator[str]:
    """A real uvicorn on a loopback port, in a thread; yields its base URL."""
    import uvicorn

    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise AssertionError("uvicorn did not start")
        time.sleep(0.02)
    try:
        if ready:
            wait_ready(url)
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@contextmanager
def serving(model: Path, log: Path, *flags: str) -> Iterator[str]:
    """``hfdeploy serve MODEL FLAGS`` as its own process, logging to ``log``; yields its URL.

    A process of its own, not a thread: a client that is busy in Python (a fuzzer)
    would otherwise share the GIL with the server and slow it several times over.
    """
    port = free_port()
    with log.open("w") as out:
        proc = subprocess.Popen(
            [HFDEPLOY, "serve", str(model), "--port", str(port), *flags], stderr=out
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url)
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
