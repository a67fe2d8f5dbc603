#!/usr/bin/env bash
set -euo pipefail
# Two GPUs, model and degree picked inside the container.
docker run --rm --gpus 2 -p 8000:8000 \
  -e MODEL=Qwen/Qwen2.5-32B-Instruct \
  -e TP=2 \
  --entrypoint /bin/bash \
  vllm/vllm-openai:v0.10.1 \
  -c 'exec vllm serve "$MODEL" --tensor-parallel-size "$TP" --max-model-len 16384'
