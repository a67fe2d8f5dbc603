"""Text generation: OpenAI chat and completions, streaming, stops, limits."""

from __future__ import annotations

import httpx
import pytest

from hfdeploy.serve.generate import StopText

MESSAGES = [{"role": "user", "content": "Say something about cats"}]


@pytest.fixture(scope="module")
def client(generator_url: str):  # type: ignore[no-untyped-def]
    import openai

    return openai.OpenAI(base_url=generator_url + "/v1", api_key="unused", max_retries=0)


def test_chat_completion_greedy_with_usage(client) -> None:  # type: ignore[no-untyped-def]
    res = client.chat.completions.create(
        model="tiny-llama", messages=MESSAGES, max_tokens=12, temperature=0
    )
    choice = res.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content
    assert choice.finish_reason in ("stop", "length")
    assert res.usage.completion_tokens <= 12
    assert res.usage.prompt_tokens > 5
    assert res.usage.total_tokens == res.usage.prompt_tokens + res.usage.completion_tokens
    again = client.chat.completions.create(
        model="tiny-llama", messages=MESSAGES, max_tokens=12, temperature=0
    )
    assert again.choices[0].message.content == choice.message.content  # greedy is deterministic


def test_chat_streaming_equals_the_whole_answer(client) -> None:  # type: ignore[no-untyped-def]
    whole = client.chat.completions.create(
        model="tiny-llama", messages=MESSAGES, max_tokens=16, temperature=0
    )
    stream = client.chat.completions.create(
        model="tiny-llama",
        messages=MESSAGES,
        max_tokens=16,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    finishes = [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ]
    assert finishes == [whole.choices[0].finish_reason]
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens
    assert chunks[0].choices[0].delta.role == "assistant"


def test_sampling_with_a_seed_repeats(client) -> None:  # type: ignore[no-untyped-def]
    def ask() -> str:
        res = client.completions.create(
            model="tiny-llama", prompt="hello", max_tokens=8, temperature=0.9, seed=7
        )
        return str(res.choices[0].text)

    assert ask() == ask()


def test_completion_stop_sequence_cuts_the_text(client) -> None:  # type: ignore[no-untyped-def]
    full = client.completions.create(model="tiny-llama", prompt="the", max_tokens=20, temperature=0)
    text = full.choices[0].text
    assert len(text) > 6
    stop = text[3:6]
    cut = client.completions.create(
        model="tiny-llama", prompt="the", max_tokens=20, temperature=0, stop=[stop]
    )
    assert cut.choices[0].text == text[: text.index(stop)]
    assert cut.choices[0].finish_reason == "stop"
    streamed = client.completions.create(
        model="tiny-llama", prompt="the", max_tokens=20, temperature=0, stop=[stop], stream=True
    )
    assert "".join(c.choices[0].text for c in streamed) == cut.choices[0].text


def test_context_limits_are_422(generator_url: str) -> None:
    too_many = httpx.post(
        generator_url + "/v1/completions", json={"prompt": "hi", "max_tokens": 10_000}
    )
    assert too_many.status_code == 422
    assert too_many.json()["error"]["param"] == "max_tokens"
    long_prompt = httpx.post(
        generator_url + "/v1/completions", json={"prompt": "word " * 400, "max_tokens": 4}
    )
    assert long_prompt.status_code == 422
    assert long_prompt.json()["error"]["code"] == "input_too_long"
    streamed = httpx.post(
        generator_url + "/v1/completions",
        json={"prompt": "word " * 400, "max_tokens": 4, "stream": True},
    )
    assert streamed.status_code == 422  # refused before the stream starts
    bad = httpx.post(generator_url + "/v1/chat/completions", json={"messages": []})
    assert bad.status_code == 422
    assert bad.json()["error"]["param"] == "messages"


def test_embeddings_are_not_a_route_of_a_generator(generator_url: str) -> None:
    r = httpx.post(generator_url + "/v1/embeddings", json={"input": "x"})
    assert r.status_code == 404
    paths = httpx.get(generator_url + "/openapi.json").json()["paths"]
    assert {"/v1/completions", "/v1/chat/completions", "/v1/models", "/info"} <= set(paths)
    assert not {"/embed", "/tokenize", "/", "/v1/embeddings"} & set(paths)


def test_stop_text_holds_back_a_possible_stop() -> None:
    s = StopText(["END"])
    assert s.update("abc E") == "abc "
    assert s.update("abc EN") == ""
    assert s.update("abc ENX") == "ENX"
    assert s.update("abc ENX END more") == " "
    assert s.stopped
    assert s.text == "abc ENX "
    plain = StopText([])
    assert plain.update("caf\ufffd") == "caf"  # half a character is never sent
    assert plain.update("café") == "é"
