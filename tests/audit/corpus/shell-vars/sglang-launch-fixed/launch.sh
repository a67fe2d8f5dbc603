#!/usr/bin/env bash
MODEL_PATH=deepseek-ai/DeepSeek-R1-Distill-Qwen-32B
MODEL_REVISION=711ad2ea6aa40cfca18895e8aca02ab92df1a746
TP=4
PORT=30000

python3 -m sglang.launch_server \
    --model-path $MODEL_PATH \
    --revision $MODEL_REVISION \
    --tp $TP \
    --host 0.0.0.0 --port $PORT
