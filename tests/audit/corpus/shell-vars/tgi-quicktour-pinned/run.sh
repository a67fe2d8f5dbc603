#!/usr/bin/env bash
set -e

model=HuggingFaceH4/zephyr-7b-beta
revision=892b3d7a7b1cf10c7a701c60881cd93df615734c   # pinned: bump deliberately
volume=$PWD/data

docker run --gpus all --shm-size 1g -p 8080:80 -v $volume:/data \
    ghcr.io/huggingface/text-generation-inference:3.3.5 \
    --model-id $model \
    --revision "$revision"
