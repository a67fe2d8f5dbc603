#!/bin/bash
# Container entrypoint: map the platform's settings onto TGI's launcher variables.
set -e

if [[ -z "${HF_MODEL_ID}" ]]; then
  echo "HF_MODEL_ID must be set" >&2
  exit 1
fi

export MODEL_ID="${HF_MODEL_ID}"
export REVISION="${HF_MODEL_REVISION:-main}"
export NUM_SHARD="${SM_NUM_GPUS:-1}"
export MAX_TOTAL_TOKENS="${MAX_TOTAL_TOKENS:-4096}"

text-generation-launcher --port 8080 --hostname 0.0.0.0
