#!/bin/bash
# Container entrypoint: the platform must pass a commit sha in HF_MODEL_REVISION.
set -euo pipefail

export MODEL_ID="${HF_MODEL_ID:?HF_MODEL_ID must be set}"
export REVISION="${HF_MODEL_REVISION:?HF_MODEL_REVISION must be a commit sha}"
export NUM_SHARD="${SM_NUM_GPUS:-1}"

exec text-generation-launcher --port 8080 --hostname 0.0.0.0
