#!/usr/bin/env bash
set -euo pipefail
hf download "${MODEL_NAME}" --local-dir /models/gemma --exclude "*.gguf" "original/*"
