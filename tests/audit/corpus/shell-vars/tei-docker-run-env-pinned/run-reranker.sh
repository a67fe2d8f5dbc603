#!/usr/bin/env bash
MODEL_ID=BAAI/bge-reranker-large
REVISION=55611d7bca2a7133960a6d3b71e083071bbfc312
IMAGE=ghcr.io/huggingface/text-embeddings-inference:86-1.8

docker run -d --name reranker --gpus '"device=0"' -p 8081:80 \
  -v hf-cache:/data \
  -e MODEL_ID=$MODEL_ID \
  -e REVISION=$REVISION \
  $IMAGE
