"""YAML documents with the line of every value, for findings that point at a line."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import yaml

from hfdeploy.errors import YamlParseError

__all__ = ["Doc", "load_docs"]

Path = tuple[str | int, ...]

# libyaml's parser when PyYAML was built with it (the wheels are): several times faster.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True, slots=True)
class Doc:
    """One YAML document: its data, and the 1-based line of each path in it."""

    data: Any
    lines: dict[Path, int]
    start: int

    def line(self, *path: str | int) -> int:
        """The line of ``path``, or of its nearest ancestor that has one."""
        p: Path = tuple(path)
        while p:
            if p in self.lines:
                return self.lines[p]
            p = p[:-1]
        return self.start


def _walk(node: yaml.Node, path: Path, out: dict[Path, int]) -> None:
    out[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            k = key.value if isinstance(key, yaml.ScalarNode) else str(key.start_mark.line)
            out[(*path, k)] = key.start_mark.line + 1
            _walk(value, (*path, k), out)
            out[(*path, k)] = key.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _walk(item, (*path, i), out)


def load_docs(text: str, *, file: str) -> Iterator[Doc]:
    """Every document of a (multi-document) YAML text; ``file`` names it in errors.

    Raises:
        YamlParseError: with the line where parsing failed, when the parser marks one.
    """
    loader = _LOADER(text)
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            lines: dict[Path, int] = {}
            _walk(node, (), lines)
            data = loader.construct_document(node)
            yield Doc(data, lines, node.start_mark.line + 1)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = (mark.line + 1) if mark else None
        raise YamlParseError(str(e).splitlines()[0], file=file, line=line) from None
    except yaml.YAMLError as e:
        raise YamlParseError(str(e), file=file, line=None) from None
    finally:
        loader.dispose()
