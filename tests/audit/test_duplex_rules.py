"""The rules for servers that hold conversations (HFD034-HFD038, and HFD001 for
``moshi.server --hf-repo``): each fires on a broken full-duplex deployment and stays quiet
on the fixed one, audited with the files around it (the Ingress, the Service and the
Deployment; the autoscaler and what it scales; compose and the Dockerfile it builds)."""

from __future__ import annotations

import pytest
import yaml

from hfdeploy.audit import audit_texts
from hfdeploy.catalog.gpus import find_gpu
from hfdeploy.plan.realtime import frame_step, reference_spec
from tests.audit._checks import assert_fires, findings_text
from tests.audit._duplex_files import (
    COMPOSE_MOSHI,
    DOCKERFILE_MOSHI,
    K8S_MOSHI,
    K8S_PERSONAPLEX,
    K8S_PERSONAPLEX_HPA,
    K8S_PERSONAPLEX_INGRESS,
    K8S_PERSONAPLEX_SERVICE,
)

GOOD = {
    "personaplex/deploy.yaml": K8S_PERSONAPLEX,
    "personaplex/service.yaml": K8S_PERSONAPLEX_SERVICE,
    "personaplex/ingress.yaml": K8S_PERSONAPLEX_INGRESS,
    "personaplex/hpa.yaml": K8S_PERSONAPLEX_HPA,
    "moshi/k8s.yaml": K8S_MOSHI,
    "moshi/compose.yaml": COMPOSE_MOSHI,
    "moshi/Dockerfile": DOCKERFILE_MOSHI,
}


def test_the_good_files_have_no_findings() -> None:
    assert findings_text(GOOD) == []


_PP_ARGS = "            - --port\n"
_CURL = "curl -f http://localhost:8998/api/chat || exit 1"
_HTTP_METRIC = """\
    - type: External
      external:
        metric:
          name: gateway_conversations_waiting
        target: {type: AverageValue, averageValue: "0.5"}
"""
_MKCERT = ('    command: [sh, -c, "pip install mkcert && exec python3 -m moshi.server --port 8998 '
           '--static none --hf-repo kyutai/moshiko-pytorch-bf16"]\n')  # fmt: skip
_OPENSSL = ("CMD openssl req -x509 -nodes -newkey rsa:2048 -subj /CN=moshi -keyout /tmp/key.pem "
            "-out /tmp/cert.pem && exec python3 -m moshi.server --hf-repo kyutai/moshiko-pytorch-bf16\n")  # fmt: skip

# (rule, file, text that breaks it, a fragment of the message) — each one of GOOD's files
# with one thing changed, audited with the others.
BROKEN = [
    ("HFD001", "moshi/k8s.yaml", K8S_MOSHI.replace("persistentVolumeClaim: {claimName: moshi-cache}", "emptyDir: {}"), "kyutai/moshiko-pytorch-bf16 (no local --moshi-weight or --mimi-weight)"),
    ("HFD001", "moshi/compose.yaml", COMPOSE_MOSHI.replace("    volumes:\n      - cache:/cache\n", ""), "moshi downloads kyutai/moshiko-pytorch-bf16"),
    ("HFD034", "personaplex/deploy.yaml", K8S_PERSONAPLEX.replace(_PP_ARGS, "            - --ssl\n            - /certs\n" + _PP_ARGS), "downloads mkcert from GitHub"),
    ("HFD034", "moshi/Dockerfile", DOCKERFILE_MOSHI.replace('CMD ["--port"', 'CMD ["--ssl", "/certs", "--port"'), "moshi is started with --ssl /certs"),
    ("HFD034", "moshi/compose.yaml", COMPOSE_MOSHI.replace("    build: .\n", "    build: .\n" + _MKCERT), "fetches or makes a certificate (mkcert)"),
    ("HFD034", "moshi/Dockerfile", DOCKERFILE_MOSHI.replace('ENTRYPOINT ["python3", "-m", "moshi.server"]\n', "").replace(DOCKERFILE_MOSHI.splitlines()[-1] + "\n", _OPENSSL), "(openssl req)"),
    ("HFD035", "personaplex/deploy.yaml", K8S_PERSONAPLEX.replace("          readinessProbe:\n            tcpSocket: {port: http}", "          readinessProbe:\n            httpGet: {path: /api/chat, port: http}"), "readiness probe asks for /api/chat"),
    ("HFD035", "personaplex/deploy.yaml", K8S_PERSONAPLEX.replace("          livenessProbe:\n            tcpSocket: {port: http}", "          livenessProbe:\n            exec: {command: [websocat, -1, 'ws://127.0.0.1:8998/api/chat']}"), "liveness probe asks for /api/chat"),
    ("HFD035", "moshi/compose.yaml", COMPOSE_MOSHI.replace("""[CMD, python3, -c, "import socket; socket.create_connection(('127.0.0.1', 8998), 2)"]""", f'[CMD-SHELL, "{_CURL}"]'), "health check asks for /api/chat, moshi's conversation WebSocket (1 conversation per process)"),
    ("HFD035", "moshi/Dockerfile", DOCKERFILE_MOSHI.replace("""CMD ["python3", "-c", "import socket; socket.create_connection(('127.0.0.1', 8998), 2)"]""", f"CMD {_CURL}"), "health check asks for /api/chat"),
    ("HFD036", "personaplex/ingress.yaml", K8S_PERSONAPLEX_INGRESS.replace('proxy-read-timeout: "3600"', 'proxy-read-timeout: "600"'), "Ingress personaplex carries /api/chat conversations to Deployment personaplex (personaplex) through Service personaplex with nginx.ingress.kubernetes.io/proxy-read-timeout 600 s"),
    ("HFD036", "personaplex/ingress.yaml", K8S_PERSONAPLEX_INGRESS.replace('    nginx.ingress.kubernetes.io/proxy-read-timeout: "3600"\n    nginx.ingress.kubernetes.io/proxy-send-timeout: "3600"\n', "    nginx.ingress.kubernetes.io/ssl-redirect: \"true\"\n"), "proxy-send-timeout 60 s (unset)"),
    ("HFD036", "moshi/k8s.yaml", K8S_MOSHI.replace('connection-idle-timeout: "3600"', 'connection-idle-timeout: "60"'), "Service moshi carries /api/chat conversations to Deployment moshi (moshi) with"),
    ("HFD037", "personaplex/hpa.yaml", K8S_PERSONAPLEX_HPA.replace(_HTTP_METRIC, "    - type: Resource\n      resource:\n        name: cpu\n        target: {type: Utilization, averageUtilization: 70}\n"), "on cpu utilisation"),
    ("HFD037", "personaplex/hpa.yaml", K8S_PERSONAPLEX_HPA.replace(_HTTP_METRIC, "    - type: Pods\n      pods:\n        metric:\n          name: DCGM_FI_DEV_GPU_UTIL\n        target: {type: AverageValue, averageValue: \"80\"}\n"), "GPU utilisation (DCGM_FI_DEV_GPU_UTIL)"),
    ("HFD037", "personaplex/hpa.yaml", K8S_PERSONAPLEX_HPA.replace("  metrics:\n" + _HTTP_METRIC, ""), "cpu utilisation (the default: no metric given)"),
    ("HFD038", "personaplex/deploy.yaml", K8S_PERSONAPLEX.replace("NVIDIA-H100-80GB-HBM3", "NVIDIA-L4"), "personaplex on NVIDIA-L4 (L4, 300 GB/s)"),
    ("HFD038", "moshi/k8s.yaml", K8S_MOSHI.replace("values: [a10g, l40s]", "values: [l40s, t4]"), "moshi on t4 (T4"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("rule_id", "path", "text", "says"), BROKEN, ids=[f"{r}-{p}" for r, p, _, _ in BROKEN]
)
def test_rule_fires_on_the_broken_file(rule_id: str, path: str, text: str, says: str) -> None:
    assert_fires(GOOD, rule_id, path, text, says)


def _only(rule_id: str, files: dict[str, str]) -> list[tuple[str, int, str, str]]:
    return [(f.file, f.line, f.severity, f.message) for f in audit_texts(files).findings
            if f.rule_id == rule_id]  # fmt: skip


def test_the_frame_step_and_the_budget_are_in_the_message() -> None:
    text = K8S_PERSONAPLEX.replace("NVIDIA-H100-80GB-HBM3", "NVIDIA-L4")
    ((_, line, severity, message),) = _only("HFD038", {**GOOD, "personaplex/deploy.yaml": text})
    step = frame_step(reference_spec("personaplex"), find_gpu("L4"), codec_instances=2).step_ms
    assert f"predicted frame step of {step:g} ms (cuda-graphs)" in message
    assert "80 ms frame" in message and "at most 68 ms (85% of it)" in message
    assert severity == "error" and "NVIDIA-L4" in text.splitlines()[line - 1]
    # A prediction, not a measurement: the audit's answer says so.
    envelope = audit_texts({**GOOD, "personaplex/deploy.yaml": text}).envelope()
    assert envelope.confidence == "medium" and "frame time" in envelope.confidence_why
    # Without CUDA graphs, PersonaPlex on an H100 is within the frame but has no margin.
    eager = K8S_PERSONAPLEX.replace(
        "            - name: HF_HOME\n",
        '            - name: NO_CUDA_GRAPH\n              value: "1"\n            - name: HF_HOME\n',
    )
    ((_, _, severity, message),) = _only("HFD038", {**GOOD, "personaplex/deploy.yaml": eager})
    assert severity == "warning" and "(eager) leaves no margin" in message
    # Moshi (8 depformer steps, one codec) is told from PersonaPlex by the image and flags.
    moshi = text.replace("personaplex:3428dfd", "moshi:0.2.13").replace(
        "            - --voice-prompt-dir\n            - /repository/.hfdeploy/voices\n", ""
    )
    ((_, _, _, message),) = _only("HFD038", {**GOOD, "personaplex/deploy.yaml": moshi})
    assert message.startswith("moshi on NVIDIA-L4")


def test_every_gpu_a_node_affinity_allows_is_checked() -> None:
    text = K8S_MOSHI.replace("values: [a10g, l40s]", "values: [t4, l4, a10g]")
    found = _only("HFD038", {**GOOD, "moshi/k8s.yaml": text})
    assert sorted(m.split(" (")[0] for _, _, _, m in found) == ["moshi on l4", "moshi on t4"]
    assert [text.splitlines()[line - 1] for _, line, _, _ in found] == [
        "                    values: [t4, l4, a10g]"
    ] * 2


def test_local_weights_with_a_hub_repo_download_nothing() -> None:
    args = ("[--port, \"8998\", --static, none, --hf-repo, kyutai/moshiko-pytorch-bf16, "
            "--moshi-weight, /models/model.safetensors, "
            "--mimi-weight, /models/tokenizer-e351c8d8-checkpoint125.safetensors]")  # fmt: skip
    text = K8S_MOSHI.replace(
        '[--port, "8998", --static, none, --hf-repo, kyutai/moshiko-pytorch-bf16]', args
    ).replace("persistentVolumeClaim: {claimName: moshi-cache}", "emptyDir: {}")
    assert text.count("--moshi-weight") == 1
    assert _only("HFD001", {**GOOD, "moshi/k8s.yaml": text}) == []
    # One weight from the Hub is still a download at start.
    hub = text.replace(
        "/models/model.safetensors", "hf://kyutai/moshiko-pytorch-bf16/model.safetensors"
    )
    ((_, _, _, message),) = _only("HFD001", {**GOOD, "moshi/k8s.yaml": hub})
    assert "(no local --moshi-weight)" in message


def test_an_ingress_needs_the_service_and_the_workload_to_judge() -> None:
    short = K8S_PERSONAPLEX_INGRESS.replace('"3600"', '"60"')
    assert _only("HFD036", {"personaplex/ingress.yaml": short}) == []  # nothing behind it
    without_service = {k: v for k, v in GOOD.items() if k != "personaplex/service.yaml"}
    assert _only("HFD036", {**without_service, "personaplex/ingress.yaml": short}) == []
    # A Service that selects other pods: not a conversation server.
    other = K8S_PERSONAPLEX_SERVICE.replace("{app: personaplex}", "{app: web}")
    files = {**GOOD, "personaplex/service.yaml": other, "personaplex/ingress.yaml": short}
    assert _only("HFD036", files) == []
    ((_, line, _, _),) = _only("HFD036", {**GOOD, "personaplex/ingress.yaml": short})
    assert "proxy-read-timeout" in short.splitlines()[line - 1]


def test_an_http_route_and_a_keda_scaled_object() -> None:
    route = yaml.safe_dump({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
        "metadata": {"name": "personaplex"},
        "spec": {"rules": [{"backendRefs": [{"name": "personaplex", "port": 8998}],
                            "timeouts": {"request": "5m"}}]},
    })  # fmt: skip
    ((_, _, _, message),) = _only("HFD036", {**GOOD, "personaplex/route.yaml": route})
    assert "HTTPRoute personaplex" in message and "timeouts.request 300 s" in message
    for no_limit in ("1h", "0s"):  # an hour; zero: no timeout (Gateway API)
        quiet = route.replace("request: 5m", f"request: {no_limit}")
        assert _only("HFD036", {**GOOD, "personaplex/route.yaml": quiet}) == []
    keda = yaml.safe_dump({
        "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
        "metadata": {"name": "personaplex-gpu"},
        "spec": {"scaleTargetRef": {"name": "personaplex"}, "triggers": [
            {"type": "prometheus", "metadata": {
                "serverAddress": "http://prometheus:9090",
                "query": "avg(DCGM_FI_DEV_GPU_UTIL{pod=~'personaplex-.*'})", "threshold": "80"}},
        ]},
    })  # fmt: skip
    ((_, _, _, message),) = _only("HFD037", {**GOOD, "personaplex/keda.yaml": keda})
    assert "GPU utilisation (DCGM_FI_DEV_GPU_UTIL)" in message


def test_an_autoscaler_on_a_request_server_is_not_this_rule() -> None:
    from tests.audit._files import K8S_HPA, K8S_VLLM

    cpu = K8S_HPA.replace("    - type: Pods\n", "    - type: Resource\n      resource: {name: cpu}\n    - type: Pods\n")  # fmt: skip
    assert cpu != K8S_HPA
    assert _only("HFD037", {"k8s/deploy.yaml": K8S_VLLM, "k8s/hpa.yaml": cpu}) == []


def test_a_load_balancer_without_an_idle_timeout_has_aws_default() -> None:
    idle = '    service.beta.kubernetes.io/aws-load-balancer-connection-idle-timeout: "3600"\n'
    unset = K8S_MOSHI.replace(
        idle, "    service.beta.kubernetes.io/aws-load-balancer-scheme: internet-facing\n"
    )
    ((_, line, _, message),) = _only("HFD036", {**GOOD, "moshi/k8s.yaml": unset})
    assert "connection-idle-timeout 60 s (unset)" in message
    assert unset.splitlines()[line - 1] == "  annotations:"
    # A network load balancer: no annotation of its timeout is read (not judged).
    nlb = K8S_MOSHI.replace(idle, '    service.beta.kubernetes.io/aws-load-balancer-type: "nlb"\n')
    assert _only("HFD036", {**GOOD, "moshi/k8s.yaml": nlb}) == []
