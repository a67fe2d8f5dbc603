"""ModelProfile from real folders: the bundled MiniLM, tiny families, shards, GGUF, configs."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hfdeploy import inspect_model
from hfdeploy.errors import MissingConfigError, UnknownModelTypeError
from tests import _models
from tests._synthetic import write_gguf


def test_bundled_minilm(minilm_dir: Path) -> None:
    p = inspect_model(str(minilm_dir))
    assert p.parameters == 22_713_216
    assert p.task.task == "sentence-similarity"
    assert p.task.kind == "embedder"
    assert p.architectures == ("BertModel",)
    assert p.weights.checkpoint_dtype == "F32"
    assert p.max_context == 512
    assert p.tokenizer
    assert p.formats.safetensors == ("model.safetensors",)
    assert not p.formats.pickle
    assert p.bytes_read < 100_000  # configs and one header, not 90 MB of weights


@pytest.mark.parametrize("family", list(_models.CONFIGS))
def test_tiny_family_parameters_match_pytorch(tiny_models: dict[str, Path], family: str) -> None:
    folder = tiny_models[family]
    expected = int((folder / "params.txt").read_text())
    p = inspect_model(str(folder))
    assert p.parameters == expected
    assert p.weights_source == "safetensors"


@pytest.mark.parametrize(
    ("family", "task", "kind"),
    [
        ("llama", "text-generation", "generator"),
        ("whisper", "automatic-speech-recognition", "speech"),
        ("bert", "text-classification", "classifier"),
    ],
)
def test_task_from_architecture(
    tiny_models: dict[str, Path], family: str, task: str, kind: str
) -> None:
    p = inspect_model(str(tiny_models[family]))
    assert (p.task.task, p.task.kind) == (task, kind)


@pytest.mark.parametrize(
    ("model_type", "task"), [("llama", "text-generation"), ("bert", "feature-extraction")]
)
def test_config_without_architectures(tmp_path: Path, model_type: str, task: str) -> None:
    # What LlamaConfig().save_pretrained writes: a model_type and no architectures. A causal LM
    # family must not be sized as an encoder (no KV cache).
    cfg = {"model_type": model_type, "hidden_size": 64, "num_hidden_layers": 2,
           "num_attention_heads": 4, "intermediate_size": 128, "vocab_size": 1000}  # fmt: skip
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    assert inspect_model(str(tmp_path)).task.task == task


def test_single_label_classifier_is_a_reranker(
    tiny_models: dict[str, Path], tmp_path: Path
) -> None:
    folder = tmp_path / "ce"
    shutil.copytree(tiny_models["bert"], folder)
    cfg = json.loads((folder / "config.json").read_text())
    cfg["id2label"] = {"0": "LABEL_0"}
    cfg["label2id"] = {"LABEL_0": 0}
    (folder / "config.json").write_text(json.dumps(cfg))
    assert inspect_model(str(folder)).task.task == "text-ranking"


def test_moe_experts_reported(tiny_models: dict[str, Path]) -> None:
    p = inspect_model(str(tiny_models["mixtral"]))
    assert p.arch.moe is not None
    assert (p.arch.moe.num_experts, p.arch.moe.active) == (4, 2)
    # 2 layers x 4 experts x 3 matrices of 64 x 96
    assert p.weights.expert_parameters == 2 * 4 * 3 * 64 * 96


def test_sharded_checkpoint_through_index(tmp_path: Path) -> None:
    model = _models.build_model("llama")
    folder = tmp_path / "sharded"
    model.save_pretrained(folder, safe_serialization=True, max_shard_size="100KB")
    shards = sorted(folder.glob("*.safetensors"))
    assert len(shards) > 1
    assert (folder / "model.safetensors.index.json").exists()
    p = inspect_model(str(folder))
    assert p.parameters == _models.count_parameters(model)
    assert p.weights.source.startswith(f"safetensors headers ({len(shards)} files")


def test_config_only_counts_exactly_with_the_lm_head(
    tiny_models: dict[str, Path], tmp_path: Path
) -> None:
    folder = tmp_path / "config_only"
    folder.mkdir()
    shutil.copy(tiny_models["llama"] / "config.json", folder / "config.json")
    p = inspect_model(str(folder))
    assert p.weights_source == "config (meta device)"
    assert p.parameters == int((tiny_models["llama"] / "params.txt").read_text())
    # the untied lm_head (vocab x hidden) is counted: AutoModel would miss it
    assert p.parameters - 256 * 64 > 0
    assert any("LlamaForCausalLM" in n for n in p.notes)


def test_config_only_unknown_model_type(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "no-such-arch-xyz"}))
    with pytest.raises(UnknownModelTypeError) as e:
        inspect_model(str(tmp_path))
    assert e.value.model_type == "no-such-arch-xyz"


def test_missing_config(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text("hello")
    with pytest.raises(MissingConfigError):
        inspect_model(str(tmp_path))


def test_pickle_weights_are_flagged(tiny_models: dict[str, Path], tmp_path: Path) -> None:
    folder = tmp_path / "pickled"
    folder.mkdir()
    shutil.copy(tiny_models["llama"] / "config.json", folder / "config.json")
    import torch

    torch.save({"w": torch.zeros(2)}, folder / "pytorch_model.bin")
    p = inspect_model(str(folder))
    assert p.formats.pickle == ("pytorch_model.bin",)
    assert p.to_dict()["formats"]["pickle"]["unsafe"] is True
    assert p.weights_source == "config (meta device)"


def test_gguf_file(tmp_path: Path) -> None:
    path = tmp_path / "tiny-Q8_0.gguf"
    write_gguf(path)
    p = inspect_model(str(path))
    g = p.formats.gguf[0]
    assert g.architecture == "llama"
    assert g.file_type == "Q8_0"
    assert set(g.tensor_types) == {"Q8_0", "F16", "F32"}
    assert p.parameters == 64 * 64 + 32 * 64 + 64
    assert g.tensor_types["Q8_0"]["bytes"] == 64 * 64 // 32 * 34  # 34 bytes per 32-value block
    assert p.max_context == 2048
    assert p.arch.groups[0].kv_heads == 2
    assert p.weights_source.startswith("gguf")


def test_safetensors_inspect_does_not_import_torch(minilm_dir: Path) -> None:
    code = (
        "import sys; from hfdeploy.cli.main import app; from typer.testing import CliRunner;"
        f"r = CliRunner().invoke(app, ['size', {str(minilm_dir)!r}, '--json']);"
        "assert r.exit_code == 0, r.output;"
        "bad = [m for m in ('torch', 'transformers', 'gguf', 'httpx') if m in sys.modules];"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
