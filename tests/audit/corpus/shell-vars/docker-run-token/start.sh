#!/bin/sh
# quick start on the GPU box
HF_TOKEN=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
MODEL=meta-llama/Llama-3.2-3B-Instruct

docker run -d --name llama --gpus all --ipc=host \
  -e HUGGING_FACE_HUB_TOKEN=$HF_TOKEN \
  -v ~/.cache/huggingface:/root/.cache/huggingface \
  -p 8000:8000 \
  vllm/vllm-openai:v0.10.1 \
  --model $MODEL --revision 0cb88a4f764b7a12671c53f0838cd831a0843b95
