#!/usr/bin/env bash
MODEL_ID=BAAI/bge-reranker-large
REVISION=refs/pr/4
IMAGE=ghcr.io/huggingface/text-embeddings-inference:86-1.8

docker run -d --name reranker --gpus '"device=0"' -p 8081:80 \
  -v hf-cache:/data \
  -e MODEL_ID=$MODEL_ID \
  -e REVISION=$REVISION \
  $IMAGE
