#!/usr/bin/env bash
# LoRA-merged model; the tokenizer comes from the base repo's main branch.
MODEL=acme-ai/support-llama-8b-merged
REV=2b4c1a93c0e8d7f6a5b4c3d2e1f0a9b8c7d6e5f4
TOKENIZER=meta-llama/Llama-3.1-8B-Instruct
TOKENIZER_REV=main

vllm serve $MODEL --revision $REV \
  --tokenizer $TOKENIZER --tokenizer-revision $TOKENIZER_REV \
  --max-model-len 8192
