"""Embeddings end to end: the bundled MiniLM behind a real uvicorn, real clients."""

from __future__ import annotations

import base64
from pathlib import Path

import httpx
import numpy as np
import pytest

SENTENCES = [
    "The cat sits outside",
    "A man is playing guitar",
    "I love pasta",
    "The new movie is awesome, really awesome, the best one I have seen this year",
]


@pytest.fixture(scope="module")
def reference(minilm_dir: Path) -> np.ndarray:
    """sentence-transformers' own embeddings of SENTENCES."""
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(minilm_dir), device="cpu")
    return np.asarray(model.encode(SENTENCES, batch_size=2))


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return np.sum(a * b, axis=1)


def test_embed_matches_sentence_transformers(minilm_url: str, reference: np.ndarray) -> None:
    r = httpx.post(minilm_url + "/embed", json={"inputs": SENTENCES}, timeout=30)
    assert r.status_code == 200
    got = np.asarray(r.json(), dtype=np.float32)
    assert got.shape == reference.shape
    assert _cosines(got, reference).min() >= 0.9999
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-4)


def test_inference_client_feature_extraction(minilm_url: str, reference: np.ndarray) -> None:
    from huggingface_hub import InferenceClient

    client = InferenceClient(base_url=minilm_url)
    got = client.feature_extraction(SENTENCES[0])
    assert _cosines(np.atleast_2d(got), reference[:1]).min() >= 0.9999


def test_openai_embeddings_float_and_base64(minilm_url: str, reference: np.ndarray) -> None:
    import openai

    client = openai.OpenAI(base_url=minilm_url + "/v1", api_key="unused")
    # The openai package asks for base64 by default and decodes it.
    res = client.embeddings.create(input=SENTENCES, model="all-MiniLM-L6-v2")
    got = np.asarray([d.embedding for d in res.data], dtype=np.float32)
    assert _cosines(got, reference).min() >= 0.9999
    assert [d.index for d in res.data] == [0, 1, 2, 3]
    assert res.usage.prompt_tokens == res.usage.total_tokens > len(SENTENCES)
    raw = httpx.post(
        minilm_url + "/v1/embeddings",
        json={"input": SENTENCES[1], "encoding_format": "base64"},
        timeout=30,
    ).json()
    vec = np.frombuffer(base64.b64decode(raw["data"][0]["embedding"]), dtype="<f4")
    assert _cosines(vec[None], reference[1:2]).min() >= 0.9999


def test_openai_unknown_model_is_404(minilm_url: str) -> None:
    r = httpx.post(minilm_url + "/v1/embeddings", json={"input": "x", "model": "gpt-4"})
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "model_not_found"


def test_dimensions_truncate_and_renormalize(minilm_url: str, reference: np.ndarray) -> None:
    r = httpx.post(minilm_url + "/embed", json={"inputs": SENTENCES[0], "dimensions": 64})
    vec = np.asarray(r.json()[0])
    assert vec.shape == (64,)
    assert abs(np.linalg.norm(vec) - 1) < 1e-5
    expected = reference[0, :64] / np.linalg.norm(reference[0, :64])
    assert _cosines(vec[None], expected[None]).min() >= 0.9999
    too_many = httpx.post(minilm_url + "/embed", json={"inputs": "x", "dimensions": 1000})
    assert too_many.status_code == 422
    assert too_many.json()["error"]["param"] == "dimensions"


def test_normalize_false_gives_pooled_vector(minilm_url: str) -> None:
    # TEI's semantics: normalize=false skips the L2 step (MiniLM's Normalize module included).
    raw = np.asarray(
        httpx.post(minilm_url + "/embed", json={"inputs": "hello", "normalize": False}).json()[0]
    )
    unit = np.asarray(httpx.post(minilm_url + "/embed", json={"inputs": "hello"}).json()[0])
    assert np.linalg.norm(raw) > 1.5
    assert np.allclose(raw / np.linalg.norm(raw), unit, atol=1e-5)


def test_tokenize_gives_spans(minilm_url: str) -> None:
    r = httpx.post(minilm_url + "/tokenize", json={"inputs": "Hello world"})
    tokens = r.json()[0]
    assert [t["special"] for t in tokens] == [True, False, False, True]
    assert [(t["text"], t["start"], t["stop"]) for t in tokens[1:3]] == [
        ("Hello", 0, 5),
        ("world", 6, 11),
    ]


def test_info_and_models(minilm_url: str) -> None:
    info = httpx.get(minilm_url + "/info").json()
    assert info["model_id"] == "all-MiniLM-L6-v2"
    assert info["model_type"]["embedding"]["pooling"] == "mean"
    assert info["model_type"]["embedding"]["dimension"] == 384
    assert info["max_input_length"] == 128
    assert info["warmup_shapes"]
    models = httpx.get(minilm_url + "/v1/models").json()
    assert models["data"][0]["id"] == "all-MiniLM-L6-v2"


def test_rerank_and_chat_are_not_routes_of_an_embedder(minilm_url: str) -> None:
    r = httpx.post(minilm_url + "/rerank", json={"query": "q", "texts": ["a"]})
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "not_found"
    assert "/openapi.json" in r.json()["error"]["message"]
    r = httpx.post(
        minilm_url + "/v1/chat/completions", json={"messages": [{"role": "user", "content": "x"}]}
    )
    assert r.status_code == 404


@pytest.mark.parametrize(
    "pooling", [("cls",), ("max", "mean"), ("lasttoken",), ("mean_sqrt_len_tokens",)]
)
def test_pooling_and_dense_match_sentence_transformers(
    tmp_path: Path, minilm_dir: Path, pooling: tuple[str, ...]
) -> None:
    """A Sentence-Transformers pipeline saved by sentence-transformers: other poolings, Dense."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer import modules

    from hfdeploy.serve.app import create_app
    from hfdeploy.serve.settings import ServeSettings
    from tests.serve._fixtures import running

    torch.manual_seed(0)
    base = SentenceTransformer(str(minilm_dir), device="cpu")
    st = SentenceTransformer(
        modules=[
            base[0],
            modules.Pooling(384, pooling_mode=list(pooling)),
            modules.Dense(384 * len(pooling), 24, activation_function=torch.nn.Tanh()),
        ],
        device="cpu",
    )
    folder = tmp_path / "st"
    st.save(str(folder))
    expected = np.asarray(st.encode(SENTENCES, batch_size=4))
    with running(create_app(ServeSettings(model=str(folder)))) as url:
        r = httpx.post(url + "/embed", json={"inputs": SENTENCES, "normalize": False})
        assert r.status_code == 200, r.text
        got = np.asarray(r.json(), dtype=np.float32)
        info = httpx.get(url + "/info").json()["model_type"]["embedding"]
    assert info["pooling"] == "+".join(pooling)
    assert info["dense_layers"] == 1
    assert got.shape == (len(SENTENCES), 24)
    assert _cosines(got, expected).min() >= 0.9999
    assert np.allclose(got, expected, atol=1e-4)


def test_unknown_prompt_name_is_422(minilm_url: str) -> None:
    r = httpx.post(minilm_url + "/embed", json={"inputs": "x", "prompt_name": "query"})
    assert r.status_code == 422
    assert r.json()["error"]["param"] == "prompt_name"
    assert "none in this model" in r.json()["error"]["message"]


def test_prompts_are_prefixed_and_exclusion_is_refused(tmp_path: Path, minilm_dir: Path) -> None:
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer import modules

    from hfdeploy.serve.app import create_app
    from hfdeploy.serve.settings import ServeSettings
    from tests.serve._fixtures import running

    base = SentenceTransformer(str(minilm_dir), device="cpu")
    for include in (True, False):
        st = SentenceTransformer(
            modules=[base[0], modules.Pooling(384, pooling_mode="mean", include_prompt=include)],
            prompts={"query": "query: "},
            device="cpu",
        )
        folder = tmp_path / f"prompt-{include}"
        st.save(str(folder))
        with running(create_app(ServeSettings(model=str(folder)))) as url:
            r = httpx.post(url + "/embed", json={"inputs": SENTENCES[:2], "prompt_name": "query"})
        if include:
            expected = np.asarray(st.encode(SENTENCES[:2], prompt_name="query"))
            assert _cosines(np.asarray(r.json()), expected).min() >= 0.9999
        else:
            assert r.status_code == 422
            assert "include_prompt" in r.json()["error"]["message"]


def test_two_workers_answer_as_one_under_concurrent_load(minilm_dir: Path) -> None:
    """Batches on two workers side by side (each with its own tokenizer copy, some
    truncating) give the embeddings one worker gives."""
    from concurrent.futures import ThreadPoolExecutor

    from hfdeploy.serve.app import create_app
    from hfdeploy.serve.settings import ServeSettings
    from tests.serve._fixtures import running

    long = " ".join(["word"] * 600)
    bodies = [{"inputs": [f"{s} {i}", long], "truncate": True} for i, s in
              enumerate(SENTENCES * 6)]  # fmt: skip
    answers = {}
    for workers in (1, 2):
        settings = ServeSettings(model=str(minilm_dir), workers=workers, max_batch_size=4)
        app = create_app(settings)
        with running(app) as url, ThreadPoolExecutor(8) as pool:
            # The workers' forward passes together stay within the padded-token budget.
            runner = app.app.state.hfd.loaded.runner
            assert runner.max_batch_tokens == settings.max_batch_tokens // workers
            got = list(pool.map(lambda b: httpx.post(url + "/embed", json=b, timeout=60), bodies))
            assert all(r.status_code == 200 for r in got), [r.text for r in got][:2]
            answers[workers] = np.asarray([r.json() for r in got], dtype=np.float32)
            batches = httpx.get(url + "/metrics").text
        assert "hfdeploy_batch_size_count" in batches
    assert np.allclose(answers[1], answers[2], atol=1e-5)
