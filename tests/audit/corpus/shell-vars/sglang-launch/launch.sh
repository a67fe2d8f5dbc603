#!/usr/bin/env bash
MODEL_PATH=deepseek-ai/DeepSeek-R1-Distill-Qwen-32B
TP=4
PORT=30000

python3 -m sglang.launch_server \
    --model-path $MODEL_PATH \
    --tp $TP \
    --trust-remote-code \
    --host 0.0.0.0 --port $PORT
