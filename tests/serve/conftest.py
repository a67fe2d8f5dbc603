"""Serving fixtures: tiny models once per session, and one real server per model."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from hfdeploy.serve.app import create_app
from hfdeploy.serve.settings import ServeSettings
from tests.serve._fixtures import build_serving_models, running


@pytest.fixture(scope="session")
def serving_models(tmp_path_factory: pytest.TempPathFactory, minilm_dir: Path) -> dict[str, Path]:
    return build_serving_models(tmp_path_factory.mktemp("serving"), minilm_dir)


@pytest.fixture(scope="session")
def minilm_url(minilm_dir: Path) -> Iterator[str]:
    """The bundled MiniLM behind a real uvicorn (small limits to test them)."""
    settings = ServeSettings(
        model=str(minilm_dir),
        served_model_name="all-MiniLM-L6-v2",
        max_client_batch_size=8,
        max_payload_bytes=20_000,
        max_input_tokens=128,
    )
    with running(create_app(settings)) as url:
        yield url


@pytest.fixture(scope="session")
def generator_url(serving_models: dict[str, Path]) -> Iterator[str]:
    settings = ServeSettings(model=str(serving_models["generator"]), served_model_name="tiny-llama")
    with running(create_app(settings)) as url:
        yield url
