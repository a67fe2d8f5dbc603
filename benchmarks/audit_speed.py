"""`hfdeploy audit` over 1,000 deployment files: wall time, against the issue's 5 s budget.

The files are the test suite's realistic ones (Kubernetes, compose, Dockerfile, shell,
Python) and files of the indirection corpus whose values come through variables (a
Kubernetes `sh -c` script, compose defaults, a shell entrypoint of exports, Python reading
the environment, a Dockerfile with build arguments), each written 1,000 / 11 times with a
different name and model id, half of them broken the way users break them. Baseline in the
same run: reading the same files (`cat`-equivalent), so the ratio says what the parsing,
the variable resolution and the rules cost.

    python benchmarks/audit_speed.py [--files 1000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.audit._files import (
    COMPOSE_TGI,
    DOCKERFILE,
    K8S_VLLM,
    PY_SERVER,
    SHELL_SGLANG,
    SHELL_TEI,
)

from _results import header
from hfdeploy.audit import audit_paths

RESULTS = Path(__file__).resolve().parent / "results" / "audit_speed.json"
CORPUS = Path(__file__).resolve().parents[1] / "tests" / "audit" / "corpus"


def _corpus(case: str) -> str:
    return (CORPUS / case).read_text(encoding="utf-8")


TEMPLATES = [
    ("deploy-{i}.yaml", K8S_VLLM, ("vllm-openai:v0.11.0", "vllm-openai:latest")),
    ("compose-{i}.yaml", COMPOSE_TGI, ("shm_size: 1g", "shm_size: 0")),
    ("Dockerfile.{i}", DOCKERFILE, ("3.11.9-slim", "latest")),
    ("run-tei-{i}.sh", SHELL_TEI, (":1.8", "")),
    ("sglang-{i}.sh", SHELL_SGLANG, ("--revision", "--revision main --x")),
    ("server_{i}.py", PY_SERVER, ('    model.encode(["warm up"])\n', "")),
    ("coder-{i}.yaml", _corpus("k8s-vars/vllm-sh-c-script-fixed/statefulset.yaml"),
     ('value: "0.90"', 'value: "0.98"')),
    ("compose-vllm-{i}.yml", _corpus("compose-vars/vllm-defaults-fixed/docker-compose.yml"),
     ("    shm_size: 16gb\n", "")),
    ("entrypoint-{i}.sh", _corpus("shell-vars/launcher-exports-required/entrypoint.sh"),
     (":?HF_MODEL_REVISION must be a commit sha", ":-main")),
    ("sentiment_{i}.py", _corpus("revisions/python-getenv-default/serve.py"),
     (', "4ba3d4463bd152c9e4abd892b50844f30c646708"', "")),
    ("Dockerfile.tgi-{i}", _corpus("dockerfile/arg-token-login/Dockerfile"),
     ("3.3.5", "latest")),
]  # fmt: skip


def write_files(root: Path, n: int) -> int:
    total = 0
    for i in range(n):
        name, text, (a, b) = TEMPLATES[i % len(TEMPLATES)]
        body = text.replace("Llama-3.1-8B-Instruct", f"Llama-{i}")
        if i % 2:
            body = body.replace(a, b)
        path = root / f"d{i // 100}" / name.format(i=i)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(body)
        total += len(body)
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--files", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        size = write_files(root, args.files)
        audit_s, read_s, findings = [], [], 0
        for _ in range(args.repeat):
            t = time.perf_counter()
            for f in sorted(root.rglob("*")):
                if f.is_file():
                    f.read_text()
            read_s.append(time.perf_counter() - t)
            t = time.perf_counter()
            report = audit_paths([root])
            audit_s.append(time.perf_counter() - t)
            findings = len(report.findings)
            assert len(report.files) == args.files, len(report.files)
    result = {
        **header("audit_speed"),
        "files": args.files,
        "bytes": size,
        "findings": findings,
        "audit_seconds_median": round(statistics.median(audit_s), 3),
        "audit_seconds_all": [round(x, 3) for x in audit_s],
        "read_only_seconds_median": round(statistics.median(read_s), 3),
        "audit_vs_read_only": round(statistics.median(audit_s) / statistics.median(read_s), 1),
        "budget_seconds": 5.0,
        "within_budget": statistics.median(audit_s) < 5.0,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
