"""What a full-duplex server reads besides the downloaded files: voices unpacked, a Hub cache
entry PersonaPlex's server finds offline, Kyutai's --config-path file; outside the lock."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

from typer.testing import CliRunner

from hfdeploy.cli.main import app
from hfdeploy.model.duplex_files import HF_CACHE, MOSHI_CONFIG, PERSONAPLEX_REPO, VOICES
from hfdeploy.model.fetch import prepare_folder, select_files
from hfdeploy.model.lock import LOCK_NAME, LockedFile, ModelLock, hash_file, verify_folder
from tests._synthetic import MIMI_FILE, kyutai_checkpoint


def test_personaplex_folder_is_prepared_and_still_verifies(tmp_path: Path) -> None:
    folder = kyutai_checkpoint(tmp_path / "pp", "personaplex", voices=True,
                               config={"model_id": "personaplex-7b-v1"})  # fmt: skip
    sha = "a" * 40  # the lock's commit is what the cache entry is written at
    (folder / LOCK_NAME).write_text(ModelLock(PERSONAPLEX_REPO, "main", sha, ()).to_json())
    written = prepare_folder(folder)
    assert any(w.startswith(VOICES) for w in written)
    assert (folder / VOICES / "NATF0.pt").read_bytes() == b"voice embedding placeholder"
    assert not (folder / MOSHI_CONFIG).exists()  # PersonaPlex's server takes no --config-path
    # PersonaPlex's server calls hf_hub_download(repo, "config.json") at start: offline, with
    # the prepared cache, huggingface_hub finds it at the lock's commit.
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(folder / HF_CACHE)}
    code = (
        "from huggingface_hub import hf_hub_download; "
        f"print(hf_hub_download({PERSONAPLEX_REPO!r}, 'config.json'))"
    )
    found = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                           check=True).stdout.strip()  # fmt: skip
    assert f"/snapshots/{sha}/config.json" in found
    assert json.loads(Path(found).read_text()) == {"model_id": "personaplex-7b-v1"}


def test_derived_files_are_outside_the_lock(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / ".hfdeploy" / "voices").mkdir(parents=True)
    (tmp_path / ".hfdeploy" / "voices" / "a.pt").write_bytes(b"x")
    f = tmp_path / "config.json"
    lock = ModelLock("o/n", "main", "b" * 40, (LockedFile("config.json", 2, hash_file(f)),))
    (tmp_path / LOCK_NAME).write_text(lock.to_json())
    assert verify_folder(tmp_path).commit_sha == "b" * 40


def test_moshi_without_config_gets_its_lm_arguments(tmp_path: Path) -> None:
    folder = kyutai_checkpoint(tmp_path / "mk", "moshiko")
    out = CliRunner().invoke(app, ["fetch", "--prepare", str(folder)])
    assert out.exit_code == 0, out.output
    args = json.loads((folder / MOSHI_CONFIG).read_text())
    assert (args["dim"], args["num_layers"], args["dep_q"], args["n_q"]) == (4096, 32, 8, 16)
    assert args["moshi_name"] == "model.safetensors" and args["mimi_name"] == MIMI_FILE
    assert len(args["delays"]) == args["n_q"] + 1


def test_voices_archive_cannot_write_outside(tmp_path: Path) -> None:
    folder = kyutai_checkpoint(tmp_path / "pp", "personaplex")
    with tarfile.open(folder / "voices.tgz", "w:gz") as tar:
        for name in ("../../escape.pt", "/abs.pt", "voices/ok.pt"):
            info = tarfile.TarInfo(name)
            info.size = 2
            tar.addfile(info, io.BytesIO(b"ok"))
    prepare_folder(folder)
    assert (folder / VOICES / "ok.pt").is_file()
    assert not (tmp_path / "escape.pt").exists() and not Path("/abs.pt").exists()


def test_fetch_keeps_voices_and_skips_the_ui() -> None:
    plan = select_files(["model.safetensors", MIMI_FILE, "tokenizer_spm_32k_3.model",
                         "voices.tgz", "dist.tgz", "config.json"])  # fmt: skip
    assert "voices.tgz" in plan.files and "dist.tgz" not in plan.files
