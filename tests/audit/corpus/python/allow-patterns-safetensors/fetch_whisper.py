"""Fetch Whisper into the shared volume (run once per cluster by the init job)."""

from pathlib import Path

from huggingface_hub import snapshot_download

REPO_ID = "openai/whisper-large-v3"
REVISION = "06f233fe06e710322aca913c1bc4249a0d71fce1"
TARGET = Path("/models") / "whisper-large-v3"
WEIGHT_PATTERNS = ["*.json", "*.txt", "model*.safetensors"]


def main() -> None:
    snapshot_download(
        REPO_ID,
        revision=REVISION,
        local_dir=TARGET,
        allow_patterns=WEIGHT_PATTERNS,
    )


if __name__ == "__main__":
    main()
