"""Rerankers, classifiers and token classifiers: scores equal transformers' own."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from hfdeploy.serve.app import create_app
from hfdeploy.serve.settings import ServeSettings
from tests.serve._fixtures import running


def _logits(folder: Path, texts: list[str], pairs: list[str] | None = None) -> np.ndarray:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    enc = tok(texts, pairs, padding=True, return_tensors="pt")
    with torch.inference_mode():
        return model(**enc).logits.numpy()


@pytest.fixture(scope="module")
def reranker_url(serving_models: dict[str, Path]) -> Iterator[str]:
    with running(create_app(ServeSettings(model=str(serving_models["reranker"])))) as url:
        yield url


@pytest.fixture(scope="module")
def classifier_url(serving_models: dict[str, Path]) -> Iterator[str]:
    with running(create_app(ServeSettings(model=str(serving_models["classifier"])))) as url:
        yield url


@pytest.fixture(scope="module")
def ner_url(serving_models: dict[str, Path]) -> Iterator[str]:
    with running(create_app(ServeSettings(model=str(serving_models["ner"])))) as url:
        yield url


def test_rerank_scores_are_sigmoid_of_the_logits(
    reranker_url: str, serving_models: dict[str, Path]
) -> None:
    query, texts = "what is a cat", ["a cat is an animal", "paris is a city", "cats purr"]
    r = httpx.post(
        reranker_url + "/rerank", json={"query": query, "texts": texts, "return_text": True}
    )
    assert r.status_code == 200
    ranked = r.json()
    logits = _logits(serving_models["reranker"], [query] * 3, texts)[:, 0]
    expected = 1 / (1 + np.exp(-logits))
    assert sorted(x["index"] for x in ranked) == [0, 1, 2]
    assert [x["score"] for x in ranked] == sorted((x["score"] for x in ranked), reverse=True)
    for x in ranked:
        assert x["score"] == pytest.approx(expected[x["index"]], abs=1e-5)
        assert x["text"] == texts[x["index"]]
    raw = httpx.post(
        reranker_url + "/rerank", json={"query": query, "texts": texts, "raw_scores": True}
    )
    assert {x["index"]: x["score"] for x in raw.json()} == pytest.approx(
        dict(enumerate(logits)), abs=1e-5
    )
    info = httpx.get(reranker_url + "/info").json()
    assert info["task"] == "text-ranking"


def test_predict_softmax_labels(classifier_url: str, serving_models: dict[str, Path]) -> None:
    r = httpx.post(classifier_url + "/predict", json={"inputs": "I love this"})
    assert r.status_code == 200
    out = r.json()
    assert {x["label"] for x in out} == {"negative", "neutral", "positive"}
    assert sum(x["score"] for x in out) == pytest.approx(1.0)
    logits = _logits(serving_models["classifier"], ["I love this"])[0]
    probs = np.exp(logits) / np.exp(logits).sum()
    labels = ["negative", "neutral", "positive"]
    assert {x["label"]: x["score"] for x in out} == pytest.approx(
        dict(zip(labels, probs, strict=True)), abs=1e-5
    )
    batch = httpx.post(classifier_url + "/predict", json={"inputs": [["a"], ["b", "c"]]}).json()
    assert len(batch) == 2
    assert len(batch[0]) == 3
    pair = httpx.post(classifier_url + "/predict", json={"inputs": ["b", "c"]}).json()
    assert [x["label"] for x in pair] == [x["label"] for x in batch[1]]
    assert [x["score"] for x in pair] == pytest.approx([x["score"] for x in batch[1]], abs=1e-6)
    # Routes of other tasks are not mounted: 404, and absent from the OpenAPI document.
    rerank = httpx.post(classifier_url + "/rerank", json={"query": "q", "texts": ["a"]})
    assert rerank.status_code == 404
    assert rerank.json()["error"]["code"] == "not_found"
    assert httpx.post(classifier_url + "/embed", json={"inputs": "a"}).status_code == 404
    paths = httpx.get(classifier_url + "/openapi.json").json()["paths"]
    assert {"/predict", "/tokenize", "/"} <= set(paths)
    assert not {"/rerank", "/embed", "/v1/embeddings", "/v1/completions"} & set(paths)


def test_inference_client_text_classification(classifier_url: str) -> None:
    from huggingface_hub import InferenceClient

    out = InferenceClient(base_url=classifier_url).text_classification("I love this")
    assert {x.label for x in out} == {"negative", "neutral", "positive"}


def test_token_classification_matches_the_pipeline(
    ner_url: str, serving_models: dict[str, Path]
) -> None:
    from transformers import pipeline

    text = "John Smith lives in Paris with Mary"
    pipe = pipeline(
        "token-classification", model=str(serving_models["ner"]), aggregation_strategy="none"
    )
    expected = [(e["entity"], e["start"], e["end"], e["score"]) for e in pipe(text)]
    r = httpx.post(ner_url + "/predict", json={"inputs": text, "aggregation_strategy": "none"})
    assert r.status_code == 200
    got = [(e["entity"], e["start"], e["end"], e["score"]) for e in r.json()]
    assert [g[:3] for g in got] == [e[:3] for e in expected]
    assert [g[3] for g in got] == pytest.approx([e[3] for e in expected], abs=1e-5)
    for e in r.json():
        assert text[e["start"] : e["end"]] == e["word"]
    grouped = httpx.post(ner_url + "/predict", json={"inputs": [text, "Bob"]}).json()
    assert len(grouped) == 2
    for e in grouped[0]:
        assert e["entity_group"] == "PER"
        assert text[e["start"] : e["end"]] == e["word"]
