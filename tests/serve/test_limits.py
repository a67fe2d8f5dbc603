"""Bad input gets a 4xx that names the problem; the server keeps serving."""

from __future__ import annotations

import json

import httpx
import pytest


def test_body_over_the_limit_is_413(minilm_url: str) -> None:
    r = httpx.post(minilm_url + "/embed", json={"inputs": "word " * 5000})
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "payload_too_large"


def test_chunked_body_over_the_limit_is_413(minilm_url: str) -> None:
    def chunks():  # no Content-Length: the limit must hold on the bytes read
        yield b'{"inputs": "'
        for _ in range(50):
            yield b"x" * 1000
        yield b'"}'

    r = httpx.post(
        minilm_url + "/embed", content=chunks(), headers={"content-type": "application/json"}
    )
    assert r.status_code == 413


def test_too_many_inputs_is_422_as_the_schema_says(minilm_url: str) -> None:
    # 422, not 413: the OpenAPI document states the limit (maxItems), so a request over it
    # is one the schema refuses, like any other.
    r = httpx.post(minilm_url + "/embed", json={"inputs": ["a"] * 9})
    assert r.status_code == 422
    assert r.json()["error"]["param"] == "inputs"
    assert "limit of 8" in r.json()["error"]["message"]
    body = httpx.get(minilm_url + "/openapi.json").json()["paths"]["/embed"]["post"]
    inputs = body["requestBody"]["content"]["application/json"]["schema"]["properties"]["inputs"]
    assert {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 8} in (
        inputs["anyOf"]
    )


def test_input_over_max_tokens_is_422_or_truncated(minilm_url: str) -> None:
    long = "hello " * 300
    r = httpx.post(minilm_url + "/embed", json={"inputs": [long, "short"]})
    assert r.status_code == 422
    err = r.json()["error"]
    assert err["code"] == "input_too_long"
    assert "limit of 128" in err["message"]
    r = httpx.post(minilm_url + "/embed", json={"inputs": [long, "short"], "truncate": True})
    assert r.status_code == 200
    assert len(r.json()) == 2


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"inputs": 3}, "inputs"),
        ({"inputs": "x", "normalize": "maybe"}, "normalize"),
        ({"texts": ["x"]}, "inputs"),
        ({"inputs": "x", "dimensions": -1}, "dimensions"),
    ],
)
def test_wrong_types_are_422_naming_the_field(minilm_url: str, body: dict, field: str) -> None:
    r = httpx.post(minilm_url + "/embed", json=body)
    assert r.status_code == 422
    err = r.json()["error"]
    assert err["param"] == field
    assert err["message"].startswith(field + ":")


def test_malformed_json_is_422(minilm_url: str) -> None:
    r = httpx.post(
        minilm_url + "/embed", content=b'{"inputs": ', headers={"content-type": "application/json"}
    )
    assert r.status_code == 422
    assert r.json()["error"]["message"].startswith("malformed JSON")


def test_empty_inputs_are_422(minilm_url: str) -> None:
    r = httpx.post(minilm_url + "/embed", json={"inputs": []})
    assert r.status_code == 422
    assert r.json()["error"]["param"] == "inputs"


def test_request_id_is_echoed_or_made(minilm_url: str) -> None:
    r = httpx.post(minilm_url + "/embed", json={"inputs": "x"}, headers={"x-request-id": "abc-1"})
    assert r.headers["x-request-id"] == "abc-1"
    made = httpx.get(minilm_url + "/health").headers["x-request-id"]
    assert len(made) == 32
    assert made != httpx.get(minilm_url + "/health").headers["x-request-id"]


def test_metrics_count_requests_batches_tokens_and_start(minilm_url: str) -> None:
    httpx.post(minilm_url + "/embed", json={"inputs": ["one", "two"]})
    httpx.post(minilm_url + "/embed", json={"inputs": 5})
    text = httpx.get(minilm_url + "/metrics").text
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    assert samples['hfdeploy_requests_total{method="POST",route="/embed",status="200"}'] >= 1
    assert samples['hfdeploy_requests_total{method="POST",route="/embed",status="422"}'] >= 1
    assert (
        'hfdeploy_request_duration_seconds_bucket{le="0.005",method="POST",route="/embed",status="200"}'
        in samples
    )
    assert samples["hfdeploy_batch_size_count"] >= 1
    assert samples['hfdeploy_tokens_total{kind="input"}'] >= 6
    assert samples["hfdeploy_queue_depth"] == 0
    assert samples["hfdeploy_model_load_seconds"] > 0
    assert samples["hfdeploy_warmup_seconds"] > 0
    assert samples["hfdeploy_ready"] == 1
    assert not any(
        k.startswith("hfdeploy_requests_total") and "unmatched" in k and "200" in k for k in samples
    )


def test_unknown_path_is_404_and_counted_as_unmatched(minilm_url: str) -> None:
    assert httpx.get(minilm_url + "/nope/123").status_code == 404
    text = httpx.get(minilm_url + "/metrics").text
    assert 'route="unmatched",status="404"' in text


def test_openapi_lists_the_embedders_routes_only(minilm_url: str) -> None:
    spec = httpx.get(minilm_url + "/openapi.json").json()
    assert set(spec["paths"]) == {
        "/embed", "/tokenize", "/info", "/", "/v1/embeddings", "/v1/models", "/health",
        "/v2/health/live", "/ready", "/v2/health/ready", "/metrics",
    }  # fmt: skip
    assert json.dumps(spec)  # serializable
