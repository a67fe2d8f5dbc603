from huggingface_hub import snapshot_download

snapshot_download(
    repo_id="mistralai/Mistral-7B-Instruct-v0.3",
    revision="e0bc86c23ce5aae1db576c8cca6f06f1f73af2db",
    local_dir="/app/model",
    allow_patterns=["*.json", "*.safetensors", "tokenizer.model"],
)
