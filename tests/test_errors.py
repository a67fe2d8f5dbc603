"""The error tree: every class under HfDeployError, with its fields in a fixed order."""

from __future__ import annotations

import inspect
from typing import Any

import pytest

from hfdeploy import errors
from hfdeploy.errors import (
    BenchError,
    GatedRepoError,
    HfDeployError,
    InputTooLongError,
    InvalidSettingError,
    LockMismatchError,
    QueueFullError,
    RevisionNotFoundError,
    SafetensorsHeaderTooLargeError,
    UnknownGPUError,
    YamlParseError,
)


def test_every_exported_name_is_an_error_under_the_root() -> None:
    classes = {
        name: c
        for name, c in vars(errors).items()
        if inspect.isclass(c) and c.__module__ == errors.__name__
    }
    assert set(errors.__all__) == set(classes)
    assert all(issubclass(c, HfDeployError) for c in classes.values())


@pytest.mark.parametrize(
    ("error", "fields"),
    [
        (LockMismatchError("/m", ["a"]), {"folder": "/m", "differences": ["a"]}),
        (  # a subclass's fields come after its parent's
            RevisionNotFoundError("o/n", "v9", where="the Hub"),
            {"ref": "o/n", "where": "the Hub", "revision": "v9"},
        ),
        (
            SafetensorsHeaderTooLargeError("f.safetensors", 2000, 1000),
            {
                "file": "f.safetensors",
                "reason": "header length 2,000 bytes exceeds the 1,000 bytes available",
                "header_len": 2000,
                "limit": 1000,
            },
        ),
        (  # the value as its repr, in its place among the parent's fields
            UnknownGPUError("B300", ["H100", "L4"]),
            {
                "name": "gpu",
                "value": "'B300'",
                "reason": "not in the GPU catalog",
                "known": ["H100", "L4"],
            },
        ),
        (
            InvalidSettingError("context", 0.5, "must be an integer"),
            {"name": "context", "value": "0.5", "reason": "must be an integer"},
        ),
        (  # class attributes as fields; stored attributes not named as fields stay out
            InputTooLongError(600, 512),
            {"status": 422, "code": "input_too_long", "param": "inputs"},
        ),
        (QueueFullError(3, 4), {"status": 503, "code": "overloaded", "param": None}),
        (
            GatedRepoError("o/n", status=403, has_token=True),
            {"repo_id": "o/n", "status": 403, "has_token": True},
        ),
        (
            YamlParseError("expected ':'", file="k.yaml", line=4),
            {"file": "k.yaml", "line": 4, "reason": "expected ':'"},
        ),
        (BenchError("no server"), {}),
    ],
)
def test_to_dict_is_type_message_hint_then_the_fields_in_order(
    error: HfDeployError, fields: dict[str, Any]
) -> None:
    assert list(error.fields().items()) == list(fields.items())
    head = {"type": type(error).__name__, "message": str(error), "hint": error.hint}
    assert list(error.to_dict().items()) == [*head.items(), *fields.items()]


def test_a_yaml_error_names_the_file_and_the_line_when_the_parser_marks_one() -> None:
    assert str(YamlParseError("bad", file="k.yaml", line=4)) == "k.yaml:4: YAML does not parse: bad"
    e = YamlParseError("bad", file="k.yaml", line=None)
    assert str(e) == "k.yaml: YAML does not parse: bad"
    assert isinstance(e, ValueError)
