"""The CLI through Typer's CliRunner: output, --json contracts, errors and exit codes."""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from hfdeploy import __version__
from hfdeploy.cli.main import app

runner = CliRunner()


def test_version() -> None:
    r = runner.invoke(app, ["--version"])
    assert r.exit_code == 0
    assert r.output.strip() == f"hfdeploy {__version__}"


def test_inspect_human(minilm_dir: Path) -> None:
    r = runner.invoke(app, ["inspect", str(minilm_dir)], env={"COLUMNS": "200"})
    assert r.exit_code == 0, r.output
    assert "22,713,216" in r.output
    assert "sentence-similarity" in r.output


def test_inspect_json(minilm_dir: Path) -> None:
    r = runner.invoke(app, ["inspect", str(minilm_dir), "--json"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert d["parameters"]["total"] == 22_713_216
    assert d["task"] == "sentence-similarity"
    assert d["formats"]["safetensors"] == ["model.safetensors"]


def test_size_json_contract(minilm_dir: Path) -> None:
    r = runner.invoke(app, ["size", str(minilm_dir), "--json", "--gpu", "L4"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert d["parameters"]["total"] == 22_713_216
    assert d["weights"]["bytes"] == 22_713_216 * 2 + 4096
    assert d["kv_cache"]["bytes_per_token"] == 0
    assert d["kv_cache"]["bytes_per_sequence"] == 0
    assert d["kv_cache"]["dtype"] == "float16"
    assert d["total"]["bytes"] > d["weights"]["bytes"]
    assert d["fits"] == [d["fits"][0]]
    assert (d["fits"][0]["gpu"], d["fits"][0]["count"], d["fits"][0]["fits"]) == ("L4", 1, True)


def test_size_human_shows_breakdown_and_fit(tiny_models: dict[str, Path]) -> None:
    r = runner.invoke(app, ["size", str(tiny_models["llama"]), "--context", "2048",
                            "--concurrency", "4"], env={"COLUMNS": "200"})  # fmt: skip
    assert r.exit_code == 0, r.output
    for word in ("weights", "kv cache", "activations", "H100-SXM", "max conc."):
        assert word in r.output


def test_corrupt_file_is_one_line_and_exit_1(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text('{"model_type": "llama"}')
    (tmp_path / "model.safetensors").write_bytes(struct.pack("<Q", 10**9) + b"{}")
    r = runner.invoke(app, ["inspect", str(tmp_path)])
    assert r.exit_code == 1
    assert "error:" in r.output and "exceeds" in r.output
    assert "next:" in r.output
    assert "Traceback" not in r.output


def test_error_json(tmp_path: Path) -> None:
    r = runner.invoke(app, ["inspect", str(tmp_path), "--json"])
    assert r.exit_code == 1
    body = json.loads(r.stdout)
    assert body["error"]["type"] == "MissingConfigError"


def test_bad_setting(minilm_dir: Path) -> None:
    r = runner.invoke(app, ["size", str(minilm_dir), "--gpu", "nope"])
    assert r.exit_code == 1
    assert "not in the GPU catalog" in r.output


def test_missing_path_and_bad_ref() -> None:
    r = runner.invoke(app, ["inspect", "./does/not/exist"])
    assert r.exit_code == 1 and "not found" in r.output
    r = runner.invoke(app, ["inspect", "not a repo!"])
    assert r.exit_code == 1 and "not a model reference" in r.output


def test_debug_shows_traceback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HFDEPLOY_DEBUG", "1")
    r = runner.invoke(app, ["inspect", str(tmp_path)])
    assert r.exit_code == 1
    assert "Traceback" in r.output


def test_kv_row_gives_the_kv_reason_not_another_note(
    tiny_models: dict[str, Path], tmp_path: Path
) -> None:
    # a config-only encoder: its first note is about weights, not about the KV cache
    (tmp_path / "config.json").write_text((tiny_models["bert"] / "config.json").read_text())
    r = runner.invoke(app, ["size", str(tmp_path), "--gpu", "L4"], env={"COLUMNS": "200"})
    assert r.exit_code == 0, r.output
    kv_row = next(line for line in r.output.splitlines() if "kv cache" in line)
    assert "weights counted" not in kv_row
    assert "no KV cache" in kv_row


def test_hints_keep_their_brackets(capsys: pytest.CaptureFixture[str]) -> None:
    import typer

    from hfdeploy.cli._output import fail
    from hfdeploy.errors import MissingDependencyError

    # Rich read "[serve]" as markup and printed "pip install 'hfdeploy'" (seen on a GPU host).
    with pytest.raises(typer.Exit):
        fail(MissingDependencyError("fastapi", extra="serve", purpose="serve a model"))
    err = capsys.readouterr().err
    assert "pip install 'hfdeploy[serve]'" in err
    assert "fastapi is needed to serve a model and is not installed" in err


def test_an_installed_but_broken_dependency_is_not_called_missing() -> None:
    from hfdeploy.errors import MissingDependencyError

    # transformers 5.17 refuses huggingface-hub 2.4 at import: installed, not missing.
    broken = ImportError("huggingface-hub>=1.5.0,<2.0 is required ... found 2.4.0")
    e = MissingDependencyError("transformers", extra="serve", purpose="serve", failure=broken)
    assert "fails to import: huggingface-hub>=1.5.0,<2.0" in e.message
    assert "not installed" not in e.message
    gone = ModuleNotFoundError("No module named 'transformers'", name="transformers")
    e = MissingDependencyError("transformers", extra="serve", purpose="serve", failure=gone)
    assert e.message.endswith("is not installed")


def test_help_text_survives_rich_rendering() -> None:
    # Regression: Rich read "[cpu]" in `serve --help` as a markup tag and dropped it, and
    # turned "uniform:A:B" in `bench --help` into an emoji. Help text must not look like
    # markup (a [word] tag) or an emoji code (:a:).
    import re

    import typer.main

    def commands(cmd: Any) -> Iterator[Any]:
        yield cmd
        for sub in getattr(cmd, "commands", {}).values():
            yield from commands(sub)

    bad = [
        f"{cmd.name} {p.name}: {p.help}"
        for cmd in commands(typer.main.get_command(app))
        for p in cmd.params
        if getattr(p, "help", None)
        and (re.search(r"\[[a-z][a-z0-9 ]*\]", p.help) or re.search(r":[a-zA-Z]:", p.help))
    ]
    assert bad == []
    res = CliRunner().invoke(app, ["serve", "--help"], env={"COLUMNS": "200"})
    assert "cpu or cuda (default: cpu)" in res.output
