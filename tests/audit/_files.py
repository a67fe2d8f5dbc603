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
  strategy:  # one pod at a time: a rollout needs no spare GPUs
    rollingUpdate: {{maxSurge: 0, maxUnavailable: 1}}
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

# Beside K8S_VLLM (Deployment "llama", app: llama): its autoscaler, disruption budget and
# claim, which the audit matches to it across files.
K8S_HPA = """\
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: llama
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: llama}
  minReplicas: 2
  maxReplicas: 4
  metrics:
    - type: Pods
      pods:
        metric:
          name: vllm:num_requests_waiting
        target: {type: AverageValue, averageValue: "8"}
"""

K8S_PDB = """\
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: llama
spec:
  maxUnavailable: 1
  selector:
    matchLabels: {app: llama}
"""

K8S_PVC = """\
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: models
spec:
  accessModes: [ReadWriteMany]
  storageClassName: efs-sc
  resources:
    requests: {storage: 40Gi}
"""

# SGLang probed on the routes that answer at once.
K8S_SGLANG = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: qwen
spec:
  selector:
    matchLabels: {app: qwen}
  strategy:
    rollingUpdate: {maxSurge: 0, maxUnavailable: 1}
  template:
    metadata:
      labels: {app: qwen}
    spec:
      containers:
        - name: sglang
          image: lmsysorg/sglang:v0.5.21
          command: [python3, -m, sglang.launch_server]
          args: [--model-path, /models/qwen, --host, 0.0.0.0, --port, "30000"]
          env:
            - {name: HF_HUB_OFFLINE, value: "1"}
            - {name: XDG_CACHE_HOME, value: /cache}
            - {name: HF_HOME, value: /cache/huggingface}
          startupProbe:
            httpGet: {path: /ready, port: 30000}
            periodSeconds: 10
            failureThreshold: 60
            timeoutSeconds: 5
          readinessProbe:
            httpGet: {path: /ready, port: 30000}
            timeoutSeconds: 5
          livenessProbe:
            httpGet: {path: /ping, port: 30000}
          resources:
            limits: {nvidia.com/gpu: 1}
          volumeMounts:
            - {name: models, mountPath: /models, readOnly: true}
            - {name: cache, mountPath: /cache}
      volumes:
        - name: models
          persistentVolumeClaim: {claimName: models}
        - name: cache
          emptyDir: {}
"""

# TGI with every capability dropped, serving on 8080 (its image's default is 80).
K8S_TGI = """\
apiVersion: v1
kind: Pod
metadata:
  name: tgi
spec:
  containers:
    - name: tgi
      image: ghcr.io/huggingface/text-generation-inference:3.3.5
      args: [--model-id, /data/model, --hostname, 0.0.0.0, --port, "8080"]
      env:
        - {name: HF_HUB_OFFLINE, value: "1"}
      ports:
        - containerPort: 8080
      startupProbe:
        httpGet: {path: /health, port: 8080}
        periodSeconds: 10
        failureThreshold: 60
      livenessProbe:
        httpGet: {path: /health, port: 8080}
      resources:
        limits: {nvidia.com/gpu: 1}
      securityContext:
        allowPrivilegeEscalation: false
        capabilities:
          drop: [ALL]
      volumeMounts:
        - {name: data, mountPath: /data}
  volumes:
    - name: data
      persistentVolumeClaim: {claimName: models}
"""

K8S_LLAMA_CPP = """\
apiVersion: v1
kind: Pod
metadata:
  name: gguf
spec:
  containers:
    - name: llama
      image: ghcr.io/ggml-org/llama.cpp:server-cuda-b10257
      args: [-m, /models/model-q4_k_m.gguf, --host, 0.0.0.0, --port, "8080", --metrics]
      env:
        - {name: HF_HUB_OFFLINE, value: "1"}
      readinessProbe:
        httpGet: {path: /health, port: 8080}
      volumeMounts:
        - {name: models, mountPath: /models, readOnly: true}
  volumes:
    - name: models
      persistentVolumeClaim: {claimName: models}
"""

# Triton's repository from a ConfigMap, file by file (subPath); the ConfigMap in its own file.
K8S_TRITON = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: triton
spec:
  selector:
    matchLabels: {app: triton}
  strategy: {type: Recreate}
  template:
    metadata:
      labels: {app: triton}
    spec:
      containers:
        - name: triton
          image: nvcr.io/nvidia/tritonserver:26.06-vllm-python-py3
          args: [tritonserver, --model-repository=/models]
          env:
            - {name: HF_HUB_OFFLINE, value: "1"}
            - {name: XDG_CACHE_HOME, value: /cache}
            - {name: HF_HOME, value: /cache/huggingface}
          startupProbe:
            httpGet: {path: /v2/health/ready, port: 8000}
            periodSeconds: 10
            failureThreshold: 60
          readinessProbe:
            httpGet: {path: /v2/health/ready, port: 8000}
          resources:
            limits: {nvidia.com/gpu: 1}
          volumeMounts:
            - {name: cache, mountPath: /cache}
            - {name: repo, mountPath: /models/llama/config.pbtxt, subPath: config.pbtxt}
            - {name: repo, mountPath: /models/llama/1/model.json, subPath: model.json}
      volumes:
        - name: cache
          emptyDir: {}
        - name: repo
          configMap: {name: llama-triton}
"""

K8S_TRITON_CONFIG = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: llama-triton
data:
  config.pbtxt: |
    backend: "vllm"
  model.json: |
    {"model": "/repository"}
"""

# The Job that fetches a pinned model into the volume (hfdeploy's fetch image).
K8S_FETCH_JOB = f"""\
apiVersion: batch/v1
kind: Job
metadata:
  name: fetch
spec:
  template:
    spec:
      restartPolicy: OnFailure
      containers:
        - name: fetch
          image: ghcr.io/acme/hfdeploy-fetch:0.1.0
          args: [acme/llama@{SHA}, --to, /repository]
          volumeMounts:
            - {{name: model, mountPath: /repository}}
      volumes:
        - name: model
          persistentVolumeClaim: {{claimName: models}}
"""

# vLLM as its image's user (uid 2000), caches in the folder the image gives it.
COMPOSE_VLLM = """\
services:
  vllm:
    image: vllm/vllm-openai:v0.30.0
    command: [/repository, --port, "8000"]
    user: "2000"
    environment:
      HOME: /home/vllm
      XDG_CACHE_HOME: /home/vllm/.cache
      HF_HOME: /home/vllm/.cache/huggingface
      HF_HUB_OFFLINE: "1"
    volumes:
      - ./model:/repository:ro
      - cache:/home/vllm/.cache
    deploy:
      resources:
        reservations:
          devices:
            - {driver: nvidia, count: 1, capabilities: [gpu]}
volumes:
  cache: {}
"""

# `hfdeploy generate`'s Inference Endpoints file: the arguments of create_inference_endpoint.
ENDPOINT_VLLM = f"""\
{{
  "name": "llama",
  "repository": "acme/llama",
  "revision": "{SHA}",
  "framework": "pytorch",
  "accelerator": "gpu",
  "vendor": "aws",
  "region": "us-east-1",
  "instance_type": "nvidia-l4",
  "instance_size": "x1",
  "custom_image": {{
    "url": "vllm/vllm-openai:v0.30.0",
    "port": 8000,
    "healthRoute": "/health"
  }},
  "env": {{
    "HF_HUB_OFFLINE": "1"
  }},
  "container_args": [
    "/repository",
    "--port",
    "8000"
  ]
}}
"""
