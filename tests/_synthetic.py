"""Large-shaped checkpoints with real headers and sparse (unallocated) data regions.

A 70B-parameter Llama-3 shape costs a few MB of real disk: each shard's header is
written, then the file is extended with ``truncate`` to its true size.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

__all__ = [
    "LLAMA3_8B",
    "LLAMA3_70B",
    "LLAMA_405B",
    "config_folder",
    "llama_shaped_checkpoint",
    "write_gguf",
    "write_safetensors_header",
]

LLAMA3_70B: dict[str, Any] = {
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 8192,
    "intermediate_size": 28672, "num_hidden_layers": 80, "num_attention_heads": 64,
    "num_key_value_heads": 8, "head_dim": 128, "vocab_size": 128256,
    "max_position_embeddings": 131072, "tie_word_embeddings": False, "torch_dtype": "bfloat16",
    "rope_theta": 500000.0, "rms_norm_eps": 1e-5,
}  # fmt: skip


LLAMA3_8B: dict[str, Any] = LLAMA3_70B | {
    "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
    "num_attention_heads": 32, "num_key_value_heads": 8,
}  # fmt: skip

# 405B-shaped: one node of 8 x 80 GB cannot hold it with a long context (multi-node plans).
LLAMA_405B: dict[str, Any] = LLAMA3_70B | {
    "hidden_size": 16384, "intermediate_size": 53248, "num_hidden_layers": 126,
    "num_attention_heads": 128,
}  # fmt: skip


def write_safetensors_header(
    path: Path, tensors: dict[str, dict[str, Any]], *, sparse_data: bool = True
) -> int:
    """Write a safetensors file: a real header, then a sparse (or zero-filled) data region.

    ``tensors`` maps names to ``{"dtype", "shape", "nbytes"}``; offsets follow in order.
    Returns the file size.
    """
    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, t in tensors.items():
        header[name] = {
            "dtype": t["dtype"],
            "shape": t["shape"],
            "data_offsets": [offset, offset + t["nbytes"]],
        }
        offset += t["nbytes"]
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        if sparse_data:
            f.truncate(8 + len(raw) + offset)
        else:
            f.write(b"\0" * offset)
    return 8 + len(raw) + offset


def _llama_tensors(c: dict[str, Any]) -> list[tuple[str, list[int]]]:
    h, i, hd = c["hidden_size"], c["intermediate_size"], c["head_dim"]
    q, kv = c["num_attention_heads"] * hd, c["num_key_value_heads"] * hd
    out: list[tuple[str, list[int]]] = [("model.embed_tokens.weight", [c["vocab_size"], h])]
    for n in range(c["num_hidden_layers"]):
        p = f"model.layers.{n}."
        out += [
            (p + "self_attn.q_proj.weight", [q, h]), (p + "self_attn.k_proj.weight", [kv, h]),
            (p + "self_attn.v_proj.weight", [kv, h]), (p + "self_attn.o_proj.weight", [h, q]),
            (p + "mlp.gate_proj.weight", [i, h]), (p + "mlp.up_proj.weight", [i, h]),
            (p + "mlp.down_proj.weight", [h, i]), (p + "input_layernorm.weight", [h]),
            (p + "post_attention_layernorm.weight", [h]),
        ]  # fmt: skip
    out += [("model.norm.weight", [h]), ("lm_head.weight", [c["vocab_size"], h])]
    return out


def config_folder(folder: Path, config: dict[str, Any]) -> Path:
    """A model folder holding ``config.json`` alone (sized from its shapes, no weights)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def llama_shaped_checkpoint(folder: Path, config: dict[str, Any], *, shards: int) -> int:
    """Write config.json, the index and ``shards`` sparse bf16 shards. Returns total bytes."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    tensors = _llama_tensors(config)
    bounds = [round(k * len(tensors) / shards) for k in range(shards + 1)]
    weight_map: dict[str, str] = {}
    total = 0
    for s in range(shards):
        part = tensors[bounds[s] : bounds[s + 1]]
        name = f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
        spec = {}
        for t, shape in part:
            n = 1
            for d in shape:
                n *= d
            spec[t] = {"dtype": "BF16", "shape": shape, "nbytes": n * 2}
            weight_map[t] = name
        total += write_safetensors_header(folder / name, spec)
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index, indent=2))
    return total


def write_gguf(path: Path) -> None:
    """A small GGUF file (Q8_0 and F16 tensors) written by the gguf package."""
    import gguf
    import numpy as np

    w = gguf.GGUFWriter(str(path), "llama")
    w.add_block_count(4)
    w.add_context_length(2048)
    w.add_embedding_length(64)
    w.add_feed_forward_length(128)
    w.add_head_count(4)
    w.add_head_count_kv(2)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_Q8_0)
    q = gguf.quants.quantize(np.ones((64, 64), np.float32), gguf.GGMLQuantizationType.Q8_0)
    w.add_tensor(
        "blk.0.attn_q.weight", q, raw_shape=q.shape, raw_dtype=gguf.GGMLQuantizationType.Q8_0
    )
    w.add_tensor("token_embd.weight", np.ones((32, 64), np.float16))
    w.add_tensor("output_norm.weight", np.ones(64, np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


_DUPLEX_TABLES = Path(__file__).parent / "data" / "duplex"
_DTYPE_BYTES = {"BF16": 2, "F16": 2, "F32": 4}
MIMI_FILE = "tokenizer-e351c8d8-checkpoint125.safetensors"


def duplex_tensors(table: str) -> dict[str, dict[str, Any]]:
    """A Moshi/PersonaPlex LM or Mimi codec tensor table (tests/data/duplex, written by
    scripts/duplex_tensor_tables.py from the moshi package) as header entries."""
    rows = json.loads((_DUPLEX_TABLES / f"{table}.json").read_text())
    out = {}
    for name, shape, dtype in rows:
        n = 1
        for d in shape:
            n *= d
        out[name] = {"dtype": dtype, "shape": shape, "nbytes": n * _DTYPE_BYTES[dtype]}
    return out


def kyutai_checkpoint(
    folder: Path,
    variant: str,
    *,
    config: dict[str, Any] | None = None,
    voices: bool = False,
) -> Path:
    """A Kyutai-layout repository: the LM (``personaplex`` or ``moshiko``) and the Mimi codec
    as sparse safetensors with their real tensor names and shapes, the SentencePiece file,
    and optionally config.json and voices.tgz (one small .pt voice file inside)."""
    import io
    import tarfile

    folder.mkdir(parents=True, exist_ok=True)
    write_safetensors_header(folder / "model.safetensors", duplex_tensors(f"{variant}_lm"))
    write_safetensors_header(folder / MIMI_FILE, duplex_tensors("mimi"))
    (folder / "tokenizer_spm_32k_3.model").write_bytes(b"\x0a\x00")  # not parsed by sizing
    if config is not None:
        (folder / "config.json").write_text(json.dumps(config))
    if voices:
        with tarfile.open(folder / "voices.tgz", "w:gz") as tar:
            data = b"voice embedding placeholder"
            info = tarfile.TarInfo("voices/NATF0.pt")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return folder


def transformers_moshi_checkpoint(folder: Path) -> Path:
    """Moshi in the Transformers layout at its published 7B shape (``MoshiConfig``'s
    defaults, Mimi's as the codec): config.json and a sparse bf16 safetensors file whose
    header lists every tensor of ``MoshiForConditionalGeneration``, built on the meta
    device."""
    import torch
    from transformers import MoshiConfig, MoshiForConditionalGeneration

    folder.mkdir(parents=True, exist_ok=True)
    config = MoshiConfig(audio_encoder_config={"model_type": "mimi"})
    with torch.device("meta"):
        model = MoshiForConditionalGeneration(config)
    tensors = {
        name: {"dtype": "BF16", "shape": list(t.shape), "nbytes": t.numel() * 2}
        for name, t in model.state_dict().items()
    }
    write_safetensors_header(folder / "model.safetensors", tensors)
    data = config.to_dict() | {"architectures": ["MoshiForConditionalGeneration"],
                               "torch_dtype": "bfloat16"}  # fmt: skip
    (folder / "config.json").write_text(json.dumps(data))
    (folder / "tokenizer.json").write_text("{}")
    return folder
