"""Every decoder model type transformers knows: each layer lands in exactly one group, or
the type is refused by name. The refused list is printed, and may only shrink."""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
from transformers.models.auto.configuration_auto import CONFIG_MAPPING
from transformers.models.auto.modeling_auto import (
    MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
    MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES,
)

from hfdeploy.model.arch import ArchSpec, arch_from_config, text_config
from hfdeploy.model.class_layers import class_layer_types
from hfdeploy.model.layers import (
    RULE_MODEL_TYPES,
    TYPE_KINDS,
    config_layer_types,
    needs_class_layer_types,
)

# transformers 5.24.0 (pinned for CI): types whose layers sizing cannot count yet.
KNOWN_REFUSED = {
    "blt",  # patcher, encoder and global sub-models: no one layer count
    "deepseek_v4",  # compressed sparse attention
    "inkling2", "inkling2_loop", "inkling2_loop_text", "inkling2_text", "inkling_mm_model",
    "inkling_text", "zaya",  # hybrid layers with a state no config field sizes
    "qwen4_exp", "qwen4_exp_text",  # indexed attention without MLA
    "unlimited_ocr",  # reference_sliding_attention
    # The language model is an encoder-decoder or sits under other names: cross-attention
    # over image or text encoders that a decoder-only count would miss.
    "florence2", "kosmos-2", "kosmos-2.5", "musicgen", "musicgen_melody", "pi0",
    "pix2struct", "pp_formulanet", "prophetnet", "t5gemma2", "trocr",
    "vision-encoder-decoder",
}  # fmt: skip

# Types whose class reports a layer count other than its config's own (not sized either way).
NOT_COMPARABLE = {
    "dory": "recurrent-depth: config.json lists 72 layer entries, the class reports 36 loops",
}

_LISTS = ("layer_types", "layers_block_type")


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    logging.disable(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(logging.NOTSET)


def _profile_arch(config: dict[str, Any]) -> ArchSpec:
    """What build_profile does with a config: ask the class only when needed."""
    mt = config.get("model_type")
    asked = class_layer_types(config) if needs_class_layer_types(text_config(config), mt) else None
    return arch_from_config(config, class_types=asked)


def _strip(config: dict[str, Any]) -> dict[str, Any]:
    """The config as older Hub checkpoints write it: no per-layer list."""
    out = {k: v for k, v in config.items() if k not in _LISTS}
    if isinstance(out.get("text_config"), dict):
        out["text_config"] = {k: v for k, v in out["text_config"].items() if k not in _LISTS}
    return out


def _decoder_configs() -> Iterator[tuple[str, dict[str, Any], int]]:
    types = sorted(
        set(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES) | set(MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES)
    )
    for mt in types:
        try:
            built = CONFIG_MAPPING[mt]()
            config = built.to_dict()
        except Exception:  # a default config that does not build: not sweepable
            continue
        config["model_type"] = mt
        try:
            n = int(built.get_text_config(decoder=True).num_hidden_layers)
        except Exception:
            n = 0
        yield mt, config, n


def _check(mt: str, arch: ArchSpec, n: int, refused: dict[str, Any]) -> None:
    if arch.unknown_layers:
        refused[mt] = dict(arch.unknown_layers)
        return
    covered = sum(g.count for g in arch.groups if g.kind != "cross")
    assert covered == n, f"{mt}: groups cover {covered} of {n} layers: {arch.groups}"


def test_every_decoder_layer_is_grouped_or_refused(capsys: pytest.CaptureFixture[str]) -> None:
    refused: dict[str, Any] = {}
    swept = 0
    with _quiet():
        for mt, config, n in _decoder_configs():
            arch = _profile_arch(config)
            if arch.family in {"encoder", "encoder-decoder"} or mt in NOT_COMPARABLE:
                continue
            swept += 1
            _check(mt, arch, n, refused)
            stripped = _profile_arch(_strip(config))
            if mt not in refused and not stripped.unknown_layers and n:
                _check(f"{mt} (no per-layer list)", stripped, n, refused)
    with capsys.disabled():
        print(f"\nlayer sweep: {swept} decoder model types; not comparable: {NOT_COMPARABLE}")
        print(f"refused {len(refused)}:")
        for mt, why in sorted(refused.items()):
            print(f"  {mt}: {why}")
    assert swept > 150
    assert set(refused) <= KNOWN_REFUSED, f"newly refused: {set(refused) - KNOWN_REFUSED}"
    assert set(refused) >= KNOWN_REFUSED, (
        f"now sized, drop from KNOWN_REFUSED: {KNOWN_REFUSED - set(refused)}"
    )


def test_written_rules_match_transformers_classes() -> None:
    """For each model type with a rule here, the rule gives the layer kinds the model class
    gives, on its default config and with local attention switched on."""
    checked = 0
    with _quiet():
        for mt in sorted(RULE_MODEL_TYPES):
            if mt not in CONFIG_MAPPING:
                continue
            has_window = "sliding_window" in CONFIG_MAPPING[mt]().to_dict()
            for extra in ({}, {"sliding_window": 64, "use_sliding_window": True}):
                if extra and not has_window:
                    continue  # no window field: switching one on means nothing to the class
                try:
                    config = {**CONFIG_MAPPING[mt](**extra).to_dict(), "model_type": mt}
                except Exception:
                    continue
                cfg = text_config(config)
                n = int(cfg.get("num_hidden_layers") or 0)
                theirs = class_layer_types(config)
                assert theirs is not None, mt
                mine = config_layer_types(_strip(dict(cfg)), mt, n)
                kinds = [TYPE_KINDS.get(x) for x in mine.names]
                assert kinds == [TYPE_KINDS.get(x) for x in theirs.names], (mt, extra)
                checked += 1
    assert checked >= len(RULE_MODEL_TYPES)
