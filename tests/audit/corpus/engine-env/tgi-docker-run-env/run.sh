#!/bin/bash
docker run -d --gpus all --shm-size 1g -p 8080:80 \
  -v "$PWD/data:/data" \
  -e MODEL_ID=microsoft/Phi-3.5-mini-instruct \
  -e TRUST_REMOTE_CODE=true \
  -e QUANTIZE=bitsandbytes-nf4 \
  ghcr.io/huggingface/text-generation-inference:3.3.5
