"""The running server keeps the contract of its own ``/openapi.json``: schemathesis, every check.

Two live servers (a real uvicorn on a loopback port each): the bundled all-MiniLM-L6-v2 and a
tiny random-weight generator, so that the TEI routes and OpenAI's embeddings, completions
and chat completions (streamed too) are fuzzed. Schemathesis' engine runs every phase its
command line runs (examples, coverage, fuzzing; stateful has no links to follow here),
derandomized, and bounded by examples per operation, not by time.

(Its pytest integration, ``schemathesis.pytest.from_fixture``, needs the live server's URL
at collection time or a pytest internal that pytest 9 no longer has; the engine needs
neither.)
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from schemathesis import Case, CheckContext, Response
from schemathesis.engine import events
from schemathesis.engine.statistic import Statistic

from tests.serve._fixtures import serving


@schemathesis.check
def too_long_is_the_only_refusal(ctx: CheckContext, response: Response, case: Case) -> None:
    """Schema-valid data is refused (422) for one reason only: an input over the token limit.

    A token limit is not something JSON Schema can state (a string's tokens are not its
    characters), so the documented 422 ``input_too_long`` is the one refusal allowed to
    data the schema calls valid (see ``positive_data_acceptance`` below); any other 422 to
    such data fails the run.
    """
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive or response.status_code != 422:
        return
    code = response.json()["error"]["code"]
    assert code == "input_too_long", f"schema-valid data refused: {response.text}"


def fuzz(url: str, *, max_examples: int) -> str:
    """Run schemathesis against ``url``; the summary line, or fail with every failure found."""
    config = schemathesis.Config.from_dict(
        {
            "checks": {
                "enabled": True,
                "positive_data_acceptance": {
                    "expected-statuses": ["2xx", "3xx", 401, 403, 404, 409, 422, 429, "5xx"]
                },
            },
            "generation": {"max-examples": max_examples, "deterministic": True, "database": "none"},
            "request-timeout": 60,
        }
    )
    schema = schemathesis.openapi.from_url(url + "/openapi.json", config=config)
    stats = Statistic()
    errors: list[str] = []
    finished: Any = None
    for event in schemathesis.engine.from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            stats.on_scenario_finished(event.recorder)
        elif isinstance(event, events.NonFatalError | events.FatalError):
            errors.append(repr(getattr(event, "value", None) or getattr(event, "exception", None)))
        elif isinstance(event, events.EngineFinished):
            finished = event
    operations = sum(1 for _ in schema.get_all_operations())
    summary = (
        f"{operations} operations, {len(stats.tested_operations)} tested, "
        f"{stats.total_cases} test cases, {stats.total_failures} failures, {len(errors)} errors"
    )
    found = [
        f"{label}: {failure.title}\n{failure.message}\n{group.code_sample}"
        for label, groups in stats.failures.items()
        for group in groups.values()
        for failure in group.failures
    ]
    assert finished is not None and str(finished.stop_reason) == "completed", summary
    assert not found and not errors, summary + "\n\n" + "\n\n".join(found + errors)
    assert len(stats.tested_operations) == operations, summary
    return summary


@pytest.fixture(scope="module")
def embedder_url(minilm_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    # Small limits keep each request cheap; the document states them (maxItems: 4).
    log = tmp_path_factory.mktemp("embedder") / "serve.log"
    flags = ("--max-client-batch-size", "4", "--max-input-tokens", "64", "--no-warmup")
    with serving(minilm_dir, log, "--served-model-name", "all-MiniLM-L6-v2", *flags) as url:
        yield url


@pytest.fixture(scope="module")
def tiny_generator_url(
    serving_models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    # A 64-token context keeps each generation short (max_tokens is at most 63).
    log = tmp_path_factory.mktemp("generator") / "serve.log"
    flags = ("--served-model-name", "tiny-llama", "--max-input-tokens", "64", "--no-warmup")
    with serving(serving_models["generator"], log, *flags) as url:
        yield url


def test_an_embedder_keeps_its_contract(embedder_url: str) -> None:
    print(fuzz(embedder_url, max_examples=20))


def test_a_generator_keeps_its_contract(tiny_generator_url: str) -> None:
    print(fuzz(tiny_generator_url, max_examples=10))
