"""The OpenAPI document says what the running server does, and the server does what it says.

Each test here pins one disagreement a schemathesis run found between the two (see
test_contract.py for the run itself).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest

from hfdeploy.serve.app import create_app
from hfdeploy.serve.settings import ServeSettings
from tests.serve._fixtures import running

ERROR_REF = {"$ref": "#/components/schemas/ErrorResponse"}


def _doc(url: str) -> dict[str, Any]:
    doc: dict[str, Any] = httpx.get(url + "/openapi.json").json()
    return doc


def _body(doc: dict[str, Any], path: str) -> dict[str, Any]:
    schema: dict[str, Any] = doc["paths"][path]["post"]["requestBody"]["content"][
        "application/json"
    ]["schema"]
    return schema


def _validate_error(doc: dict[str, Any], r: httpx.Response) -> None:
    """``r`` is a JSON error body that the document's ErrorResponse schema accepts."""
    assert r.headers["content-type"] == "application/json"
    schema = {**ERROR_REF, "components": doc["components"]}
    jsonschema.validate(r.json(), schema)


def test_every_status_a_route_answers_is_documented_with_the_error_body(minilm_url: str) -> None:
    doc = _doc(minilm_url)
    for path, item in doc["paths"].items():
        for method, op in item.items():
            responses = op["responses"]
            assert all("X-Request-Id" in r["headers"] for r in responses.values()), path
            if method == "post":
                assert {"413", "422", "500", "503"} <= set(responses), path
            for status, r in responses.items():
                if status.startswith(("4", "5")) and "health" not in op["tags"]:
                    assert r["content"]["application/json"]["schema"] == ERROR_REF, (path, status)
    assert "Retry-After" in doc["paths"]["/embed"]["post"]["responses"]["503"]["headers"]
    assert set(doc["paths"]["/v1/embeddings"]["post"]["responses"]) >= {"404", "413", "422"}
    # And what the server answers is that body.
    _validate_error(doc, httpx.post(minilm_url + "/embed", json={"inputs": 3}))
    _validate_error(
        doc, httpx.post(minilm_url + "/v1/embeddings", json={"input": "x", "model": "m"})
    )


def test_metrics_are_documented_as_prometheus_text(minilm_url: str) -> None:
    content = _doc(minilm_url)["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    assert set(content) == {"text/plain"}
    assert httpx.get(minilm_url + "/metrics").headers["content-type"].startswith("text/plain;")


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/tokenize", {"inputs": "x", "add_special_tokens": "false"}, "add_special_tokens"),
        ("/embed", {"inputs": "x", "normalize": 1}, "normalize"),
        ("/embed", {"inputs": "x", "truncate": "true"}, "truncate"),
        ("/embed", {"inputs": "x", "dimensions": "8"}, "dimensions"),
        ("/v1/embeddings", {"input": "x", "dimensions": 8.5}, "dimensions"),
    ],
)
def test_fields_refuse_what_their_schema_type_refuses(
    minilm_url: str, path: str, body: dict[str, Any], field: str
) -> None:
    """Strict bodies: a boolean is not "false" or 1, an integer not "8" (the schema's types)."""
    r = httpx.post(minilm_url + path, json=body)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["param"] == field


def test_an_integral_float_is_an_integer_as_json_schema_says(minilm_url: str) -> None:
    r = httpx.post(minilm_url + "/embed", json={"inputs": "x", "dimensions": 8.0})
    assert r.status_code == 200
    assert len(r.json()[0]) == 8


def test_an_unreadable_body_is_422_with_the_error_body(minilm_url: str) -> None:
    # Not UTF-8: FastAPI's own body handling answered 400 {"detail": ...} here.
    r = httpx.post(
        minilm_url + "/tokenize", content=b"\xff\xfe{", headers={"content-type": "application/json"}
    )
    assert r.status_code == 422
    _validate_error(_doc(minilm_url), r)
    assert r.json()["error"]["message"].startswith("malformed JSON")


def test_no_route_and_a_wrong_method_get_the_error_body(minilm_url: str) -> None:
    doc = _doc(minilm_url)
    missing = httpx.get(minilm_url + "/nope")
    assert missing.status_code == 404
    _validate_error(doc, missing)
    assert missing.json()["error"]["code"] == "not_found"
    wrong = httpx.delete(minilm_url + "/embed")
    assert wrong.status_code == 405
    assert wrong.headers["allow"] == "POST"
    _validate_error(doc, wrong)
    assert wrong.json()["error"]["code"] == "method_not_allowed"


def test_the_document_states_the_embedders_limits(minilm_url: str) -> None:
    doc = _doc(minilm_url)
    inputs = _body(doc, "/embed")["properties"]["inputs"]["anyOf"]
    assert {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 8} in inputs
    dims = _body(doc, "/embed")["properties"]["dimensions"]["anyOf"][0]
    assert dims["maximum"] == 384
    assert _body(doc, "/embed")["properties"]["prompt_name"]["anyOf"] == [{"type": "null"}]
    # Token ids: the schema offered them, the server refused them.
    embeddings_input = _body(doc, "/v1/embeddings")["properties"]["input"]["anyOf"]
    assert all(b.get("items", {}).get("type") != "integer" for b in embeddings_input)
    assert httpx.post(minilm_url + "/v1/embeddings", json={"input": [1, 2]}).status_code == 422
    empty = httpx.post(minilm_url + "/tokenize", json={"inputs": []})
    assert (empty.status_code, empty.json()["error"]["param"]) == (422, "inputs")
    ok = httpx.post(minilm_url + "/v1/embeddings", json={"input": "x", "dimensions": 384})
    assert ok.status_code == 200
    over = httpx.post(minilm_url + "/v1/embeddings", json={"input": "x", "dimensions": 385})
    assert (over.status_code, over.json()["error"]["param"]) == (422, "dimensions")


def test_the_document_states_the_generators_limits(generator_url: str) -> None:
    doc = _doc(generator_url)
    completion = _body(doc, "/v1/completions")["properties"]
    assert completion["max_tokens"]["anyOf"][0]["maximum"] == 255  # a 256-token context
    prompts = completion["prompt"]["anyOf"][1]
    assert (prompts["minItems"], prompts["maxItems"]) == (1, 1)
    assert completion["stop"]["anyOf"][1]["maxItems"] == 4
    assert completion["seed"]["anyOf"][0]["maximum"] == 2**53 - 1
    chat = _body(doc, "/v1/chat/completions")["properties"]
    assert chat["max_completion_tokens"]["anyOf"][0]["maximum"] == 255
    ok = doc["paths"]["/v1/completions"]["post"]["responses"]["200"]["content"]
    assert set(ok) == {"application/json", "text/event-stream"}


def _complete(url: str, **body: Any) -> httpx.Response:
    return httpx.post(url + "/v1/completions", json={"prompt": "the cat sat", **body}, timeout=60)


def test_max_tokens_up_to_the_documented_maximum_is_served(generator_url: str) -> None:
    # The prompt leaves less than 255 tokens of the context: generation stops there
    # (it answered 422 before, to a value the schema allows).
    r = _complete(generator_url, max_tokens=255, temperature=0)
    assert r.status_code == 200, r.text
    usage = r.json()["usage"]
    assert usage["total_tokens"] <= 256
    if usage["completion_tokens"] + usage["prompt_tokens"] == 256:
        assert r.json()["choices"][0]["finish_reason"] == "length"
    over = _complete(generator_url, max_tokens=256)
    assert (over.status_code, over.json()["error"]["param"]) == (422, "max_tokens")
    chat = httpx.post(
        generator_url + "/v1/chat/completions",
        json={"messages": [{"role": "user", "content": "hi"}], "max_tokens": 256,
              "max_completion_tokens": 4},
    )  # fmt: skip
    assert (chat.status_code, chat.json()["error"]["param"]) == (422, "max_tokens")


def test_a_temperature_near_zero_decodes_greedily(generator_url: str) -> None:
    # 3e-41 made the logits inf and the sampler raise: a 500.
    tiny = _complete(generator_url, max_tokens=8, temperature=3e-41)
    assert tiny.status_code == 200, tiny.text
    greedy = _complete(generator_url, max_tokens=8, temperature=0)
    assert tiny.json()["choices"][0]["text"] == greedy.json()["choices"][0]["text"]


def test_a_seed_outside_the_documented_range_is_422(generator_url: str) -> None:
    # 2**64 overflowed torch.manual_seed: a 500.
    r = _complete(generator_url, max_tokens=2, seed=2**64)
    assert (r.status_code, r.json()["error"]["param"]) == (422, "seed")
    assert _complete(generator_url, max_tokens=2, seed=2**53 - 1).status_code == 200


ALWAYS = {"/health", "/v2/health/live", "/ready", "/v2/health/ready", "/metrics", "/info",
          "/v1/models"}  # fmt: skip


@pytest.mark.parametrize(
    ("model", "paths"),
    [
        ("reranker", {"/rerank", "/predict", "/tokenize", "/"}),
        ("classifier", {"/predict", "/tokenize", "/"}),
        ("ner", {"/predict", "/tokenize", "/"}),
        ("generator", {"/v1/completions", "/v1/chat/completions"}),
        ("speech", {"/v1/audio/transcriptions", "/"}),
    ],
)
def test_only_the_models_task_routes_are_mounted(
    serving_models: dict[str, Path], model: str, paths: set[str]
) -> None:
    app = create_app(ServeSettings(model=str(serving_models[model])))
    assert set(app.app.openapi()["paths"]) == ALWAYS | paths


def test_a_generator_without_a_chat_template_has_no_chat_route(
    serving_models: dict[str, Path], tmp_path: Path
) -> None:
    folder = shutil.copytree(serving_models["generator"], tmp_path / "no-chat")
    (folder / "chat_template.jinja").unlink()
    with running(create_app(ServeSettings(model=str(folder), warmup=False))) as url:
        chat = httpx.post(url + "/v1/chat/completions", json={"messages": [{"role": "user"}]})
        assert chat.status_code == 404
        assert "/v1/chat/completions" not in _doc(url)["paths"]
        assert _complete(url, max_tokens=2).status_code == 200


def test_an_api_key_is_documented_where_it_is_needed(minilm_dir: Path) -> None:
    app = create_app(ServeSettings(model=str(minilm_dir), api_key="s3cret"))
    doc = app.app.openapi()
    assert doc["components"]["securitySchemes"] == {"bearer": {"type": "http", "scheme": "bearer"}}
    embed = doc["paths"]["/embed"]["post"]
    assert embed["security"] == [{"bearer": []}]
    assert embed["responses"]["401"]["content"]["application/json"]["schema"] == ERROR_REF
    ready = doc["paths"]["/ready"]["get"]
    assert "security" not in ready
    assert "401" not in ready["responses"]
