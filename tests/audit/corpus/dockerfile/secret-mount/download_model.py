import os

from huggingface_hub import snapshot_download

REPO_ID = "meta-llama/Llama-3.2-1B-Instruct"
REVISION = "9213176726f574b556790deb65791e0c5aa438b6"

snapshot_download(
    REPO_ID,
    revision=REVISION,
    local_dir="/app/model",
    allow_patterns=["*.json", "*.safetensors"],
    token=os.environ["HF_TOKEN"],
)
