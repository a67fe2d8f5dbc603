"""Sentence embeddings, computed as Sentence-Transformers computes them."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hfdeploy.errors import BadRequestError, ModelLoadError
from hfdeploy.model.profile import ModelProfile
from hfdeploy.serve.encoders import Encoder, scatter
from hfdeploy.serve.runtime import load_kwargs
from hfdeploy.serve.settings import ServeSettings

__all__ = ["EmbedInput", "EmbedRunner", "Embedding"]


@dataclass(frozen=True, slots=True)
class EmbedInput:
    text: str
    truncate: bool = False
    normalize: bool = True
    prompt: str | None = None
    dimensions: int | None = None


@dataclass(frozen=True, slots=True)
class Embedding:
    vector: np.ndarray
    tokens: int


_LEGACY_POOLING = (
    ("pooling_mode_cls_token", "cls"),
    ("pooling_mode_max_tokens", "max"),
    ("pooling_mode_mean_tokens", "mean"),
    ("pooling_mode_mean_sqrt_len_tokens", "mean_sqrt_len_tokens"),
    ("pooling_mode_weightedmean_tokens", "weightedmean"),
    ("pooling_mode_lasttoken", "lasttoken"),
)
_ACTIVATIONS = {"Tanh", "Identity", "ReLU", "GELU", "Sigmoid", "SiLU"}


def _read_json(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text(encoding="utf-8"))
    return data if isinstance(data, dict) else {}


class EmbedRunner(Encoder):
    """Sentence embeddings as Sentence-Transformers computes them.

    The pipeline is read from ``modules.json``: the Transformer, Pooling (every
    mode, concatenated in the configured order), Dense layers, Normalize. A folder
    without Sentence-Transformers files gets mean pooling.
    """

    task = "feature-extraction"

    def __init__(self, folder: Path, settings: ServeSettings, profile: ModelProfile) -> None:
        super().__init__(folder, settings, profile)
        from transformers import AutoModel

        modules = _read_json_list(folder / "modules.json")
        transformer_path = folder
        self.pooling: list[str] = ["mean"]
        self.dense: list[Any] = []
        self.has_normalize = False
        self.include_prompt = True
        self.lowercase = False
        st_limit: int | None = None
        for m in modules:
            kind = str(m.get("type", "")).rsplit(".", 1)[-1]
            path = folder / str(m.get("path", ""))
            match kind:
                case "Transformer":
                    transformer_path = path
                    cfg_file = path / "sentence_bert_config.json"
                    if cfg_file.exists():
                        cfg = _read_json(cfg_file)
                        st_limit = cfg.get("max_seq_length")
                        self.lowercase = bool(cfg.get("do_lower_case", False))
                case "Pooling":
                    pooling_cfg = _read_json(path / "config.json")
                    self.pooling = _pooling_modes(pooling_cfg)
                    self.include_prompt = bool(pooling_cfg.get("include_prompt", True))
                case "Dense":
                    self.dense.append(self._load_dense(path))
                case "Normalize":
                    self.has_normalize = True
                case _:
                    raise ModelLoadError(
                        str(folder),
                        f"Sentence-Transformers module {m.get('type')!r} is not supported",
                        hint="Supported: Transformer, Pooling, Dense, Normalize.",
                    )
        st_cfg = folder / "config_sentence_transformers.json"
        self.prompts: dict[str, str] = {}
        if st_cfg.exists():
            self.prompts = {
                str(k): str(v) for k, v in (_read_json(st_cfg).get("prompts") or {}).items()
            }
        self.model = AutoModel.from_pretrained(transformer_path, **load_kwargs(settings, profile))
        self.model.to(self.device).eval()
        self.max_input_tokens = self._limit(
            min(x for x in (st_limit, profile.max_context) if x)
            if (st_limit or profile.max_context)
            else None
        )
        dim = int(profile.config.get("hidden_size") or 0) * len(self.pooling)
        for layer in self.dense:
            dim = layer[0].out_features
        self.dimension = dim

    def _load_dense(self, path: Path) -> Any:
        torch = self.torch
        cfg = _read_json(path / "config.json")
        act_name = str(cfg.get("activation_function", "torch.nn.modules.linear.Identity"))
        act_cls = act_name.rsplit(".", 1)[-1]
        if act_cls not in _ACTIVATIONS:
            raise ModelLoadError(str(path), f"Dense activation {act_name!r} is not supported")
        if cfg.get("use_residual") or cfg.get("module_input_name", "sentence_embedding") != (
            "sentence_embedding"
        ):
            raise ModelLoadError(
                str(path), "Dense layers with a residual or on token embeddings are not supported"
            )
        linear = torch.nn.Linear(
            int(cfg["in_features"]), int(cfg["out_features"]), bias=bool(cfg.get("bias", True))
        )
        weights = path / "model.safetensors"
        if weights.exists():
            from safetensors.torch import load_file

            state = load_file(str(weights))
        elif (path / "pytorch_model.bin").exists() and self.settings.allow_pickle:
            state = torch.load(path / "pytorch_model.bin", map_location="cpu", weights_only=True)
        else:
            raise ModelLoadError(
                str(path),
                "Dense layer has no model.safetensors",
                hint="Convert it to safetensors, or pass --allow-pickle if you trust the source.",
            )
        linear.load_state_dict({k.removeprefix("linear."): v for k, v in state.items()})
        return torch.nn.Sequential(linear, getattr(torch.nn, act_cls)()).to(self.device).eval()

    def info(self) -> dict[str, Any]:
        return {
            "pooling": "+".join(self.pooling),
            "dense_layers": len(self.dense),
            "normalize_module": self.has_normalize,
            "dimension": self.dimension,
            "prompts": sorted(self.prompts),
        }

    def prompt_text(self, name: str | None) -> str | None:
        if name is None:
            return None
        if name not in self.prompts:
            known = ", ".join(sorted(self.prompts)) or "none in this model"
            raise BadRequestError(
                f"unknown prompt_name {name!r} (known: {known})", param="prompt_name"
            )
        if not self.include_prompt:
            # Sentence-Transformers leaves the prompt's tokens out of the pooling here;
            # pooling them in would give other vectors than the model's own, silently.
            raise BadRequestError(
                "this model pools without its prompt's tokens (include_prompt=false), "
                "which hfdeploy serve does not do yet; send the text without prompt_name",
                param="prompt_name",
            )
        return self.prompts[name]

    def forward(self, batch: dict[str, Any]) -> Any:
        torch = self.torch
        out = self.model(**batch)
        hidden = out[0] if isinstance(out, tuple) else out.last_hidden_state
        mask = batch["attention_mask"]
        vec = torch.cat([_pool(torch, mode, hidden, mask) for mode in self.pooling], dim=-1)
        for layer in self.dense:
            vec = layer(vec.to(next(layer.parameters()).dtype))
        return vec.float()

    def run(self, payloads: list[Any]) -> list[Any]:
        items: list[EmbedInput] = payloads
        texts = [self._text(p) for p in items]
        encs = self.encode(texts, [None] * len(items), [p.truncate for p in items])
        return scatter(self, encs, lambda i, row, e: Embedding(_finish(row, items[i]), len(e.ids)))

    def _text(self, p: EmbedInput) -> str:
        text = (p.prompt or "") + p.text
        return text.lower() if self.lowercase else text


def _read_json_list(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    data = json.loads(path.read_text(encoding="utf-8"))
    return [m for m in data if isinstance(m, dict)] if isinstance(data, list) else []


def _pooling_modes(cfg: dict[str, Any]) -> list[str]:
    mode = cfg.get("pooling_mode")
    if isinstance(mode, str):
        return [mode]
    if isinstance(mode, list):
        return [str(m) for m in mode]
    modes = [name for key, name in _LEGACY_POOLING if cfg.get(key)]
    return modes or ["mean"]


def _pool(torch: Any, mode: str, hidden: Any, mask: Any) -> Any:
    m = mask.unsqueeze(-1).to(hidden.dtype)
    match mode:
        case "cls":
            return hidden[:, 0]
        case "max":
            return hidden.masked_fill(m == 0, float("-inf")).max(dim=1).values
        case "mean" | "mean_sqrt_len_tokens":
            total = (hidden * m).sum(dim=1, dtype=torch.float32)
            count = torch.clamp(m.sum(dim=1, dtype=torch.float32), min=1e-9)
            return (total / (count if mode == "mean" else torch.sqrt(count))).to(hidden.dtype)
        case "weightedmean":
            weights = torch.arange(1, hidden.shape[1] + 1, dtype=torch.float32).view(1, -1, 1)
            wm = m.float() * weights.to(hidden.device)
            return ((hidden.float() * wm).sum(dim=1) / torch.clamp(wm.sum(dim=1), min=1e-9)).to(
                hidden.dtype
            )
        case "lasttoken":
            last = mask.sum(dim=1) - 1
            return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
    raise ModelLoadError("pooling", f"pooling mode {mode!r} is not supported")


def _finish(vector: np.ndarray, p: EmbedInput) -> np.ndarray:
    if p.dimensions is not None:
        vector = vector[: p.dimensions]
    if p.normalize:
        norm = float(np.linalg.norm(vector))
        if norm > 0:
            vector = vector / norm
    out: np.ndarray = np.ascontiguousarray(vector, dtype=np.float32)
    return out
