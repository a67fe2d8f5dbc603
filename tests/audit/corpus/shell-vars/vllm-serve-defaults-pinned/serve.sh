#!/usr/bin/env bash
# Serve on the host (bare metal, 2 x L40S). Override any of these from the environment.
set -euo pipefail

MODEL="${MODEL:-mistralai/Mistral-Small-24B-Instruct-2501}"
REVISION="${REVISION:-8b7d61b2b9a4a2e3cc8a6a4c2a58e7c6a3d2f1e0}"
TP="${TP:-2}"
PORT="${PORT:-8000}"
MAX_LEN=${MAX_LEN:-32768}

export HF_HUB_ENABLE_HF_TRANSFER=1

exec vllm serve "$MODEL" \
  --revision "$REVISION" \
  --tensor-parallel-size "$TP" \
  --port "$PORT" \
  --max-model-len "$MAX_LEN" \
  --gpu-memory-utilization 0.92
