"""Check that every flag hfdeploy writes for vLLM or SGLang exists in the pinned release.

The engine catalog (src/hfdeploy/catalog/engines.json) pins an image tag per engine; a flag
renamed or removed upstream would make the generated deployment crash at start. This
script reads the released source of the pinned version (the vLLM sdist or the SGLang
wheel, from PyPI) without installing it, collects the command-line flags its parsers
define, plans a matrix of models for the engine, and lists each flag hfdeploy emits with
whether the release defines it. It exits 1 when one is missing.

    pip download --no-deps --no-binary :all: vllm==0.30.0   # or fetch the sdist by URL
    python scripts/check_engine_flags.py vllm vllm-0.30.0.tar.gz
    pip download --no-deps sglang==0.5.21
    python scripts/check_engine_flags.py sglang sglang-0.5.21-*.whl

The flag collection is a superset (quoted ``--flags`` in the argument modules, plus
``--field-name`` for the fields of the dataclasses those parsers are generated from), so a
"missing" is real; a "present" means the name exists, not that its meaning is unchanged.
"""

from __future__ import annotations

import re
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

from hfdeploy import inspect_model
from hfdeploy.catalog.engines import engine_catalog
from hfdeploy.plan.planner import plan_deployment

# Modules that define each engine's server flags, and those whose dataclass fields become
# flags (``field_name`` -> ``--field-name``).
ARG_FILES = {
    "vllm": (r"vllm/engine/arg_utils\.py", r"vllm/entrypoints/.*cli_args\.py"),
    "sglang": (r"sglang/srt/server_args\.py", r"sglang/srt/arg_groups/.*\.py"),
}
FIELD_FILES = {
    "vllm": r"vllm/entrypoints/.*cli_args\.py",
    "sglang": r"sglang/srt/(server_args|arg_groups/fields/.*)\.py",
}
QUOTED = re.compile(r"""["'](--[a-z0-9][a-z0-9-]*)["']""")
FIELD = re.compile(r"^\s{4}([a-z_][a-z0-9_]*)\s*:\s*\S", re.M)


def _sources(archive: Path) -> Iterator[tuple[str, str]]:
    """(path inside the package, text) for every .py file of a wheel or sdist."""
    if archive.suffix == ".whl":
        with zipfile.ZipFile(archive) as zf:
            for name in zf.namelist():
                if name.endswith(".py"):
                    yield name, zf.read(name).decode(errors="replace")
        return
    with tarfile.open(archive) as tf:
        for member in tf.getmembers():
            if member.isfile() and member.name.endswith(".py"):
                f = tf.extractfile(member)
                if f is not None:
                    # sdists prefix every path with "name-version/"
                    yield member.name.split("/", 1)[1], f.read().decode(errors="replace")


def defined_flags(engine: str, archive: Path) -> set[str]:
    flags: set[str] = set()
    for path, text in _sources(archive):
        if any(re.fullmatch(p, path) for p in ARG_FILES[engine]):
            flags.update(QUOTED.findall(text))
        if re.fullmatch(FIELD_FILES[engine], path):
            flags.update("--" + name.replace("_", "-") for name in FIELD.findall(text))
    return flags


def emitted_flags(engine: str) -> dict[str, list[str]]:
    """Every flag the planner writes for ``engine`` over a matrix of models: flag -> cases."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests._synthetic import LLAMA3_8B, LLAMA3_70B, LLAMA_405B, config_folder

    cases = {
        "8B on L4": (LLAMA3_8B, {"gpu": "l4"}),
        "8B on H100": (LLAMA3_8B, {"gpu": "h100"}),
        "70B on H100 (tensor parallel)": (LLAMA3_70B, {"gpu": "h100"}),
        "405B-shaped on 8 H100 (fp8)": (LLAMA_405B, {"gpu": "h100"}),
    }
    if engine == "vllm":
        cases["405B-shaped on 3 nodes (pipeline parallel)"] = (
            LLAMA_405B, {"gpu": "h100", "context": 32768, "concurrency": 32}
        )  # fmt: skip
    out: dict[str, list[str]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, (config, knobs) in cases.items():
            folder = config_folder(Path(tmp) / re.sub(r"\W+", "-", label), config)
            plan = plan_deployment(inspect_model(str(folder)), engine=engine, **knobs)
            for arg in plan.command.args:
                if arg.startswith("--"):
                    out.setdefault(arg.split("=", 1)[0], []).append(label)
    return out


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ARG_FILES:
        print(__doc__, file=sys.stderr)
        return 2
    engine, archive = argv[0], Path(argv[1])
    spec = engine_catalog()[engine]
    defined = defined_flags(engine, archive)
    if len(defined) < 50:
        print(f"only {len(defined)} flags found in {archive.name}: not a {engine} release?")
        return 2
    emitted = emitted_flags(engine)
    print(f"{engine}: catalog tag {spec.deploy.image}:{spec.deploy.tag}; source {archive.name}; "
          f"{len(defined)} flags defined there")  # fmt: skip
    missing = []
    for flag in sorted(emitted):
        ok = flag in defined
        missing += [] if ok else [flag]
        print(f"  {'ok     ' if ok else 'MISSING'} {flag:34} {len(emitted[flag])} case(s)")
    if missing:
        print(f"{len(missing)} flag(s) hfdeploy writes are not defined by {archive.name}")
        return 1
    print(f"all {len(emitted)} flags hfdeploy writes for {engine} are defined by {archive.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
