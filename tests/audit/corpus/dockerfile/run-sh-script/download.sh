#!/bin/sh
set -e
git lfs install
git clone --depth 1 https://huggingface.co/sentence-transformers/all-mpnet-base-v2 /models/all-mpnet-base-v2
rm -rf /models/all-mpnet-base-v2/.git
