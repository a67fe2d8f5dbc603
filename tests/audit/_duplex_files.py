"""Full-duplex speech deployments with no findings: PersonaPlex on Kubernetes behind
ingress-nginx, Moshi behind an AWS load balancer, Moshi with compose and its Dockerfile.
Tests break them one rule at a time."""

from __future__ import annotations

# PersonaPlex: every file from the volume, TCP probes, on H100s, one replica per conversation.
K8S_PERSONAPLEX = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: personaplex
spec:
  replicas: 2
  selector:
    matchLabels: {app: personaplex}
  strategy:
    rollingUpdate: {maxSurge: 0, maxUnavailable: 1}
  template:
    metadata:
      labels: {app: personaplex}
    spec:
      nodeSelector:
        nvidia.com/gpu.product: NVIDIA-H100-80GB-HBM3
      securityContext:
        runAsNonRoot: true
        runAsUser: 1000
        fsGroup: 1000
      containers:
        - name: server
          image: registry.example.com/team/personaplex:3428dfd
          command: [python3, -m, moshi.server]
          args:
            - --port
            - "8998"
            - --static
            - none
            - --moshi-weight
            - /repository/model.safetensors
            - --mimi-weight
            - /repository/tokenizer-e351c8d8-checkpoint125.safetensors
            - --tokenizer
            - /repository/tokenizer_spm_32k_3.model
            - --voice-prompt-dir
            - /repository/.hfdeploy/voices
          env:
            - name: HF_HUB_OFFLINE
              value: "1"
            - name: HF_HOME
              value: /cache/huggingface
          ports:
            - {name: http, containerPort: 8998}
          startupProbe:
            tcpSocket: {port: http}
            periodSeconds: 10
            failureThreshold: 60
          readinessProbe:
            tcpSocket: {port: http}
          livenessProbe:
            tcpSocket: {port: http}
            periodSeconds: 15
          resources:
            limits: {nvidia.com/gpu: 1}
          volumeMounts:
            - {name: model, mountPath: /repository, readOnly: true}
            - {name: cache, mountPath: /cache}
      volumes:
        - name: model
          persistentVolumeClaim: {claimName: personaplex-model, readOnly: true}
        - name: cache
          persistentVolumeClaim: {claimName: personaplex-cache}
"""

K8S_PERSONAPLEX_SERVICE = """\
apiVersion: v1
kind: Service
metadata:
  name: personaplex
spec:
  selector: {app: personaplex}
  ports:
    - {name: http, port: 8998, targetPort: http}
"""

# ingress-nginx: the conversation's WebSocket kept for an hour, TLS at the ingress.
K8S_PERSONAPLEX_INGRESS = """\
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: personaplex
  annotations:
    nginx.ingress.kubernetes.io/proxy-read-timeout: "3600"
    nginx.ingress.kubernetes.io/proxy-send-timeout: "3600"
spec:
  ingressClassName: nginx
  tls:
    - {hosts: [talk.example.com], secretName: talk-tls}
  rules:
    - host: talk.example.com
      http:
        paths:
          - path: /api/chat
            pathType: Prefix
            backend:
              service:
                name: personaplex
                port: {name: http}
"""

# Replicas follow the conversations in use, a count the session gateway exports.
K8S_PERSONAPLEX_HPA = """\
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: personaplex
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: personaplex}
  minReplicas: 2
  maxReplicas: 8
  metrics:
    - type: External
      external:
        metric:
          name: gateway_conversations_waiting
        target: {type: AverageValue, averageValue: "0.5"}
"""

# Moshi on an AWS classic load balancer with an hour of idle time, on A10G instances.
K8S_MOSHI = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: moshi
spec:
  replicas: 1
  selector:
    matchLabels: {app: moshi}
  strategy:
    type: Recreate
  template:
    metadata:
      labels: {app: moshi}
    spec:
      affinity:
        nodeAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
            nodeSelectorTerms:
              - matchExpressions:
                  - key: karpenter.k8s.aws/instance-gpu-name
                    operator: In
                    values: [a10g, l40s]
      securityContext:
        runAsNonRoot: true
        runAsUser: 1000
      containers:
        - name: moshi
          image: registry.example.com/team/moshi:0.2.13
          command: [python3, -m, moshi.server]
          args: [--port, "8998", --static, none, --hf-repo, kyutai/moshiko-pytorch-bf16]
          env:
            - name: HF_HOME
              value: /cache/huggingface
          startupProbe:
            tcpSocket: {port: 8998}
            periodSeconds: 10
            failureThreshold: 60
          livenessProbe:
            tcpSocket: {port: 8998}
          resources:
            limits: {nvidia.com/gpu: 1}
          volumeMounts:
            - {name: cache, mountPath: /cache}
      volumes:
        - name: cache
          persistentVolumeClaim: {claimName: moshi-cache}
---
apiVersion: v1
kind: Service
metadata:
  name: moshi
  annotations:
    service.beta.kubernetes.io/aws-load-balancer-connection-idle-timeout: "3600"
spec:
  type: LoadBalancer
  selector: {app: moshi}
  ports:
    - {port: 443, targetPort: 8998}
"""

# Moshi with compose, its image built from the Dockerfile beside it.
COMPOSE_MOSHI = """\
services:
  moshi:
    build: .
    user: "1000"
    environment:
      HF_HOME: /cache/huggingface
    volumes:
      - cache:/cache
    ports:
      - "8998:8998"
    healthcheck:
      test: [CMD, python3, -c, "import socket; socket.create_connection(('127.0.0.1', 8998), 2)"]
      interval: 10s
      timeout: 5s
      start_period: 300s
    deploy:
      resources:
        reservations:
          devices:
            - {driver: nvidia, count: 1, capabilities: [gpu]}
volumes:
  cache: {}
"""

DOCKERFILE_MOSHI = """\
FROM python:3.11.9-slim-bookworm
RUN apt-get update && apt-get install -y --no-install-recommends libopus0=1.3.1-3 \\
    && rm -rf /var/lib/apt/lists/*
RUN pip install --no-cache-dir moshi==0.2.13
ENV HF_HOME=/cache/huggingface
USER 1000
EXPOSE 8998
HEALTHCHECK --interval=10s --timeout=5s \\
    CMD ["python3", "-c", "import socket; socket.create_connection(('127.0.0.1', 8998), 2)"]
ENTRYPOINT ["python3", "-m", "moshi.server"]
CMD ["--port", "8998", "--static", "none", "--hf-repo", "kyutai/moshiko-pytorch-bf16"]
"""
