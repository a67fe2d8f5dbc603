"""What a full-duplex server needs beside the downloaded files, written into the model folder
under ``.hfdeploy/`` (outside the lock: ``fetch --verify`` ignores it), so the serving
container reads everything from its read-only mount and downloads nothing:

- ``.hfdeploy/voices/``: ``voices.tgz`` unpacked (PersonaPlex's ``--voice-prompt-dir``;
  without it the server downloads the archive at every start);
- ``.hfdeploy/hf-cache/``: a Hub cache holding the repository's ``config.json`` at the
  pinned commit, under ``refs/main`` (PersonaPlex's server downloads that file at every
  start, even offline; with ``HF_HUB_OFFLINE=1`` and this cache it finds it);
- ``.hfdeploy/moshi-config.json``: the LM's arguments for Kyutai's server
  (``--config-path``), for a repository without a config.json of its own (the server
  would download one, and offline it cannot).
"""

from __future__ import annotations

import json
import shutil
import tarfile
from pathlib import Path
from typing import Any

from hfdeploy.errors import InvalidSettingError
from hfdeploy.model.duplex import DuplexSpec, is_kyutai_config, kyutai_files, moshi_delays

__all__ = [
    "DERIVED_DIR",
    "HF_CACHE",
    "KYUTAI_LM_ARGS",
    "KYUTAI_MIMI_ARGS",
    "MOSHI_CONFIG",
    "PERSONAPLEX_REPO",
    "VOICES",
    "moshi_lm_config",
    "prepare_duplex_folder",
]

DERIVED_DIR = ".hfdeploy"
VOICES = f"{DERIVED_DIR}/voices"
HF_CACHE = f"{DERIVED_DIR}/hf-cache"
MOSHI_CONFIG = f"{DERIVED_DIR}/moshi-config.json"
#: The commit recorded for a model that is not pinned on the Hub (a local folder).
LOCAL_COMMIT = "0" * 40
#: The repository PersonaPlex's server fetches config.json from when no --hf-repo is given
#: (its default; the file is only a download counter, so the model's own stands in for it).
PERSONAPLEX_REPO = "nvidia/personaplex-7b-v1"

# The moshi package's LM arguments (models/loaders.py _lm_kwargs, 0.2.13): a --config-path
# file replaces them whole, so every one is written.
KYUTAI_LM_ARGS: dict[str, object] = {
    "dim": 4096, "text_card": 32000, "existing_text_padding_id": 3, "n_q": 16, "dep_q": 8,
    "card": 2048, "num_heads": 32, "num_layers": 32, "hidden_scale": 4.125, "causal": True,
    "layer_scale": None, "context": 3000, "max_period": 10000, "gating": "silu",
    "norm": "rms_norm_f32", "positional_embedding": "rope", "depformer_dim": 1024,
    "depformer_dim_feedforward": 4224, "depformer_num_heads": 16, "depformer_num_layers": 6,
    "depformer_layer_scale": None, "depformer_multi_linear": True, "depformer_context": 8,
    "depformer_max_period": 10000, "depformer_gating": "silu", "depformer_pos_emb": "none",
    "depformer_weights_per_step": True,
    "delays": [0, 0, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 1, 1],
}  # fmt: skip

# The moshi package's Mimi arguments (models/loaders.py _mimi_config, 0.2.13): what a
# Kyutai folder without ``mimi_config_name`` holds.
_SEANET_DIM = 512
KYUTAI_MIMI_ARGS: dict[str, Any] = {
    "sample_rate": 24000, "channels": 1, "frame_rate": 12.5,
    "seanet": {"channels": 1, "dimension": _SEANET_DIM, "causal": True, "n_filters": 64,
               "n_residual_layers": 1, "activation": "ELU", "compress": 2, "dilation_base": 2,
               "disable_norm_outer_blocks": 0, "kernel_size": 7, "residual_kernel_size": 3,
               "last_kernel_size": 3, "norm": "none", "pad_mode": "constant",
               "ratios": [8, 6, 5, 4], "true_skip": True},
    "quantizer": {"dimension": 256, "n_q": 32, "bins": 2048, "input_dimension": _SEANET_DIM,
                  "output_dimension": _SEANET_DIM},
    "transformer": {"d_model": _SEANET_DIM, "num_heads": 8, "num_layers": 8, "causal": True,
                    "layer_scale": 0.01, "context": 250, "conv_layout": True,
                    "max_period": 10000, "gating": "none", "norm": "layer_norm",
                    "positional_embedding": "rope", "dim_feedforward": 2048,
                    "input_dimension": _SEANET_DIM, "output_dimensions": [_SEANET_DIM]},
}  # fmt: skip


def moshi_lm_config(spec: DuplexSpec, *, lm_file: str, codec_file: str, tokenizer: str) -> str:
    """Kyutai's ``--config-path`` file for this model's shape: the package's arguments with
    the shape read from the model, and its file names."""
    args = dict(KYUTAI_LM_ARGS) | {
        "dim": spec.dim, "num_layers": spec.layers, "num_heads": spec.heads,
        "context": spec.context_frames, "n_q": spec.codebooks, "dep_q": spec.dep_q,
        "depformer_dim": spec.depformer_dim, "depformer_num_layers": spec.depformer_layers,
        "depformer_num_heads": spec.depformer_heads,
        "depformer_context": spec.depformer_context, "text_card": spec.text_vocab,
        "card": spec.audio_vocab, "moshi_name": lm_file, "mimi_name": codec_file,
        "tokenizer_name": tokenizer,
    }  # fmt: skip
    args["delays"] = moshi_delays(spec.codebooks // 2)
    return json.dumps(args, indent=2) + "\n"


def _unpack_voices(archive: Path, dest: Path) -> int:
    """Regular files only, no absolute paths or ``..``; a leading ``voices/`` is dropped."""
    count = 0
    with tarfile.open(archive, "r:*") as tar:
        for m in tar.getmembers():
            parts = Path(m.name).parts
            if not m.isfile() or m.name.startswith("/") or ".." in parts:
                continue
            rel = (
                Path(*parts[1:])
                if parts and parts[0] == "voices" and len(parts) > 1
                else Path(m.name)
            )
            src = tar.extractfile(m)
            if src is None:
                continue
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            with src, open(target, "wb") as out:
                shutil.copyfileobj(src, out)
            count += 1
    return count


def _hub_cache(folder: Path, repo_id: str, commit: str) -> str:
    org, _, name = repo_id.partition("/")
    root = folder / HF_CACHE / f"models--{org}--{name}"
    (root / "refs").mkdir(parents=True, exist_ok=True)
    (root / "refs" / "main").write_text(commit, encoding="utf-8")
    snap = root / "snapshots" / commit
    snap.mkdir(parents=True, exist_ok=True)
    config = folder / "config.json"
    (snap / "config.json").write_bytes(config.read_bytes() if config.is_file() else b"{}\n")
    return f"{HF_CACHE}/models--{org}--{name}"


def prepare_duplex_folder(folder: Path, spec: DuplexSpec, *, commit: str | None) -> list[str]:
    """Write the derived files a full-duplex server reads (see the module docstring) into
    ``folder``; return what was written. A folder that is not a Kyutai layout gets nothing.

    Raises:
        InvalidSettingError: ``voices.tgz`` is not a readable archive.
    """
    names = [p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()]
    files = kyutai_files(names)
    if files is None:
        return []
    written: list[str] = []
    derived = folder / DERIVED_DIR
    derived.mkdir(exist_ok=True)
    if files.voices == "voices.tgz":
        voices = folder / VOICES
        shutil.rmtree(voices, ignore_errors=True)
        try:
            n = _unpack_voices(folder / "voices.tgz", voices)
        except (tarfile.TarError, OSError) as e:
            raise InvalidSettingError(
                "voices.tgz", str(folder), f"not a readable archive: {e}"
            ) from None
        written.append(f"{VOICES}/ ({n} voice prompts)")
    if spec.variant == "personaplex":
        written.append(_hub_cache(folder, PERSONAPLEX_REPO, commit or LOCAL_COMMIT))
    config = folder / "config.json"
    try:
        own = json.loads(config.read_text(encoding="utf-8")) if config.is_file() else None
    except json.JSONDecodeError:
        own = None
    has_config = isinstance(own, dict) and is_kyutai_config(own)
    if spec.variant == "moshi" and not has_config:  # Kyutai's server reads --config-path
        spm = files.text_tokenizer or "tokenizer_spm_32k_3.model"
        text = moshi_lm_config(spec, lm_file=files.lm, codec_file=files.codec, tokenizer=spm)
        (folder / MOSHI_CONFIG).write_text(text, encoding="utf-8")
        written.append(MOSHI_CONFIG)
    return written
