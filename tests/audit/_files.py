"""Realistic deployment files with no findings; tests break them one rule at a time."""

from __future__ import annotations

SHA = "0123456789abcdef0123456789abcdef01234567"

K8S_VLLM = f"""\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: llama
spec:
  replicas: 1
  selector:
    matchLabels: {{app: llama}}
  template:
    metadata:
      labels: {{app: llama}}
    spec:
      securityContext:
        runAsNonRoot: true
        runAsUser: 1000
      containers:
        - name: vllm
          image: vllm/vllm-openai:v0.11.0
          args:
            - --model
            - meta-llama/Llama-3.1-8B-Instruct
            - --revision
            - {SHA}
            - --tensor-parallel-size
            - "2"
            - --gpu-memory-utilization
            - "0.90"
            - --max-model-len
            - "8192"
          env:
            - name: HF_HOME
              value: /models/hf
            - name: HF_TOKEN
              valueFrom:
                secretKeyRef: {{name: hf, key: token}}
          ports:
            - containerPort: 8000
          startupProbe:
            httpGet: {{path: /health, port: 8000}}
            periodSeconds: 10
            failureThreshold: 120
          livenessProbe:
            httpGet: {{path: /health, port: 8000}}
          readinessProbe:
            httpGet: {{path: /health, port: 8000}}
          resources:
            limits:
              nvidia.com/gpu: 2
          volumeMounts:
            - name: models
              mountPath: /models
            - name: shm
              mountPath: /dev/shm
      volumes:
        - name: models
          persistentVolumeClaim: {{claimName: models}}
        - name: shm
          emptyDir: {{medium: Memory, sizeLimit: 8Gi}}
"""

COMPOSE_TGI = f"""\
services:
  tgi:
    image: ghcr.io/huggingface/text-generation-inference:3.3.4
    command: --model-id mistralai/Mistral-7B-Instruct-v0.3 --revision {SHA} --num-shard 2
    shm_size: 1g
    environment:
      HF_TOKEN: ${{HF_TOKEN}}
    volumes:
      - hf-data:/data
    deploy:
      resources:
        reservations:
          devices:
            - driver: nvidia
              count: 2
              capabilities: [gpu]
volumes:
  hf-data: {{}}
"""

DOCKERFILE = """\
FROM python:3.11.9-slim
RUN pip install --no-cache-dir 'hfdeploy[serve]==0.1.0'
ENV HF_HUB_OFFLINE=1 HF_HOME=/home/app/.cache/huggingface
USER 1000
CMD ["hfdeploy", "serve", "/repository", "--host", "0.0.0.0"]
"""

SHELL_TEI = f"""\
#!/bin/sh
set -eu
docker run --rm --gpus 1 -p 8080:80 -v "$PWD/data:/data" \\
  ghcr.io/huggingface/text-embeddings-inference:1.8 \\
  --model-id BAAI/bge-small-en-v1.5 --revision {SHA}
"""

SHELL_SGLANG = f"""\
python -m sglang.launch_server --model-path Qwen/Qwen2.5-7B-Instruct --revision {SHA} --port 30000
"""

PY_SERVER = f"""\
from contextlib import asynccontextmanager

from fastapi import FastAPI
from sentence_transformers import SentenceTransformer

model = None


@asynccontextmanager
async def lifespan(app):
    global model
    model = SentenceTransformer("sentence-transformers/all-MiniLM-L6-v2", revision="{SHA}")
    model.encode(["warm up"])
    yield


app = FastAPI(lifespan=lifespan)
"""
