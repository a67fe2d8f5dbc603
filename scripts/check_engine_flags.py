"""Check that every flag hfdeploy writes for vLLM or SGLang exists in the pinned release, and
that the engine facts the generated files rely on are what the release says.

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
    pip download --no-deps moshi==0.2.13
    python scripts/check_engine_flags.py moshi moshi-0.2.13-py3-none-any.whl
    # PersonaPlex: the repository's archive at the pinned commit (GitHub's .zip)
    python scripts/check_engine_flags.py personaplex personaplex-3428dfd.zip

Facts come from the engine catalog's entry and are looked for in the release: the queue
metric the autoscaler watches, the routes the probes use, the image's ENTRYPOINT, non-root
user and cache folder (vLLM's sdist holds its Dockerfile), the cache variables the
environment sets, SGLang's health route that waits a second before it answers.

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
from hfdeploy.catalog.engines import EngineSpec, engine_catalog
from hfdeploy.plan.planner import plan_deployment

# Modules that define each engine's server flags, and those whose dataclass fields become
# flags (``field_name`` -> ``--field-name``).
ARG_FILES = {
    "vllm": (r"vllm/engine/arg_utils\.py", r"vllm/entrypoints/.*cli_args\.py"),
    "sglang": (r"sglang/srt/server_args\.py", r"sglang/srt/arg_groups/.*\.py"),
    # Full-duplex servers: Kyutai's moshi wheel; PersonaPlex's repository archive at the
    # pinned commit (its package is the repository's moshi/ folder).
    "moshi": (r"moshi/server\.py",),
    "personaplex": (r"moshi/moshi/server\.py",),
}
FIELD_FILES = {
    "vllm": r"vllm/entrypoints/.*cli_args\.py",
    "sglang": r"sglang/srt/(server_args|arg_groups/fields/.*)\.py",
}
#: Fewer flags than this in a release means the archive is not that engine's.
MIN_FLAGS = {"moshi": 10, "personaplex": 10}
QUOTED = re.compile(r"""["'](--[a-z0-9][a-z0-9-]*)["']""")
FIELD = re.compile(r"^\s{4}([a-z_][a-z0-9_]*)\s*:\s*\S", re.M)


def _wanted(name: str) -> bool:
    return name.endswith(".py") or name.rsplit("/", 1)[-1] == "Dockerfile"


def _sources(archive: Path) -> Iterator[tuple[str, str]]:
    """(path inside the package, text) for every .py file and Dockerfile of a wheel, an sdist
    or a repository archive (.zip, its top folder dropped)."""
    if archive.suffix in (".whl", ".zip"):
        with zipfile.ZipFile(archive) as zf:
            for name in zf.namelist():
                if _wanted(name):
                    path = name.split("/", 1)[1] if archive.suffix == ".zip" else name
                    yield path, zf.read(name).decode(errors="replace")
        return
    with tarfile.open(archive) as tf:
        for member in tf.getmembers():
            if member.isfile() and _wanted(member.name):
                f = tf.extractfile(member)
                if f is not None:
                    # sdists prefix every path with "name-version/"
                    yield member.name.split("/", 1)[1], f.read().decode(errors="replace")


def defined_flags(engine: str, archive: Path) -> set[str]:
    flags: set[str] = set()
    for path, text in _sources(archive):
        if any(re.fullmatch(p, path) for p in ARG_FILES[engine]):
            flags.update(QUOTED.findall(text))
        if engine in FIELD_FILES and re.fullmatch(FIELD_FILES[engine], path):
            flags.update("--" + name.replace("_", "-") for name in FIELD.findall(text))
    return flags


def _facts(spec: EngineSpec) -> list[tuple[str, str, str]]:
    """(what, file pattern, text pattern) for each catalog fact the release must show."""
    d = spec.deploy
    assert d is not None
    r = d.routes
    if spec.name in ("moshi", "personaplex"):
        return _duplex_facts(spec)
    if spec.name == "vllm":
        words = ", ".join(f'"{w}"' for w in spec.detect.commands[0])
        home = d.env["HOME"]
        return [
            ("queue metric " + r.queue_metric, r"vllm/v1/metrics/loggers\.py",
             re.escape(f'"{r.queue_metric}"')),
            (f"image ENTRYPOINT [{words}]", r"docker/Dockerfile",
             re.escape(f"ENTRYPOINT [{words}]")),
            (f"non-root user {d.run_as_user}, home {home}", r"docker/Dockerfile",
             rf"useradd --uid {d.run_as_user}\b[^\n]*\n?[^\n]*--home-dir {re.escape(home)}"),
            (f"cache folder {d.cache_dir} made in the image", r"docker/Dockerfile",
             rf"mkdir -p {re.escape(d.cache_dir)}\b"),
            ("XDG_CACHE_HOME read (vLLM's cache root)", r"vllm/envs\.py", '"XDG_CACHE_HOME"'),
            *_default_facts(spec),
            *_local_facts(spec),
        ]  # fmt: skip
    server = r"sglang/srt/entrypoints/http_server\.py"
    facts = [
        ("queue metric " + r.queue_metric, r"sglang/srt/observability/metrics_collector\.py",
         re.escape(f'"{r.queue_metric}"')),
        (f"ready route {r.ready}", server, re.escape(f'@app.get("{r.ready}")')),
        (f"live route {r.live}", server, re.escape(f'@app.get("{r.live}")')),
    ]  # fmt: skip
    facts += _default_facts(spec) + _local_facts(spec)
    for route, seconds in r.slow_routes.items():
        facts.append((f"{route} waits {seconds:g} s before it answers", server,
                      re.escape(f'@app.get("{route}")') + r"[\s\S]*asyncio\.sleep\("
                      + f"{seconds:g}" + r"\)"))  # fmt: skip
    return facts


def _duplex_facts(spec: EngineSpec) -> list[tuple[str, str, str]]:
    """What the full-duplex files rely on: the port, one session per process, the UI off,
    the routes; PersonaPlex's two codecs and its config.json lookup at every start."""
    d = spec.deploy
    assert d is not None
    assert spec.sizing is not None
    server = r"moshi/moshi/server\.py" if spec.name == "personaplex" else r"moshi/server\.py"
    facts = [
        (f"port {d.routes.port} by default", server,
         rf'add_argument\("--port", default={d.routes.port}'),
        ("one session at a time (an asyncio.Lock)", server, r"self\.lock = asyncio\.Lock\(\)"),
        (f"the session route {d.routes.session}", server,
         re.escape(f'add_get("{d.routes.session}"')),
        ("--static none serves no UI (nothing downloaded)", server, r'static != "none"'),
    ]  # fmt: skip
    if spec.name == "personaplex":
        facts += [
            ("config.json looked up on the Hub at every start (hence the prepared cache)",
             server, r'hf_hub_download\(args\.hf_repo, "config\.json"\)'),
            (f"{spec.sizing.codec_instances} Mimi codecs loaded", server,
             r"other_mimi = loaders\.get_mimi"),
            ("--host not passed to web.run_app (every interface)", server,
             r"web\.run_app\(app, port=args\.port, ssl_context=ssl_context\)"),
            ("dep_q forced to 16", r"moshi/moshi/models/loaders\.py", r'lm_kwargs\["dep_q"\] = 16'),
        ]  # fmt: skip
    else:
        facts.append(("--config-path passed to the checkpoint loader", server,
                      r"config_path=args\.config_path"))  # fmt: skip
    return facts


def _default_facts(spec: EngineSpec) -> list[tuple[str, str, str]]:
    """The engine's defaults by GPU memory (the catalog's ``sizing.by_gpu``) in its source."""
    sizing = spec.sizing
    assert sizing is not None
    out = []
    if spec.name == "vllm":
        where = r"vllm/engine/arg_utils\.py"
        for rule in sizing.by_gpu:
            if rule.min_memory_gib:
                but = "".join(rf' and "{n}" not in device_name' for n in rule.not_named)
                gib = rule.min_memory_gib
                out.append((f"defaults from {gib:g} GiB"
                            + "".join(f", not {n}" for n in rule.not_named), where,
                            rf"device_memory >= {gib:g} \* GiB_bytes{but}"))  # fmt: skip
            out.append((f"OpenAI server: {rule.batched_tokens:,} batched tokens, "
                        f"{rule.max_seqs} sequences", where,
                        rf"OPENAI_API_SERVER: {rule.batched_tokens},[\s\S]{{0,200}}"
                        rf"OPENAI_API_SERVER: {rule.max_seqs},"))  # fmt: skip
        return out
    where = r"sglang/srt/arg_groups/memory_hook\.py"
    for rule in sizing.by_gpu:
        if rule.below_memory_gib:
            out.append((f"below {rule.below_memory_gib:g} GiB: {rule.batched_tokens:,}-token "
                        f"chunks, graphs to {rule.graph_max_bs}", where,
                        rf"gpu_mem < {rule.below_memory_gib:g} \* 1024:[\s\S]{{0,600}}?"
                        rf"chunked_prefill_size={rule.batched_tokens},[\s\S]{{0,300}}?"
                        rf"max_bs = {rule.graph_max_bs}\b"))  # fmt: skip
    f = sizing.static_fraction
    if f is not None:
        out.append((f"static fraction: {f.per_token_mib:g} MiB a token, at least "
                    f"{f.floor_mib:g} MiB above {f.floor_above_gib:g} GiB", where,
                    rf"activation_tokens \* {f.per_token_mib:g}[\s\S]*"
                    rf"max\(reserved_mem, {f.floor_mib / 1024:g} \* 1024\)"))  # fmt: skip
    return out


def _local_facts(spec: EngineSpec) -> list[tuple[str, str, str]]:
    """What the engine keeps on sliding and chunked layers (the catalog's ``local_layers``)."""
    assert spec.sizing is not None
    local = spec.sizing.local_layers
    if spec.name == "vllm":
        kv, cfg = r"vllm/v1/kv_cache_interface\.py", r"vllm/config/vllm\.py"
        facts = [
            ("sliding layers: window - 1 + in-flight tokens, + 1 block", kv,
             r"self\.sliding_window - 1 \+ self\.extra_retained_tokens \+ max_in_flight_tokens"
             r"[\s\S]{0,600}?cdiv\(num_tokens, self\.block_size\) \+ 1"),
            (f"in flight: pipeline stages + {local.in_flight_batches_over_pp} batches", cfg,
             rf"return pp_size \+ {local.in_flight_batches_over_pp}\b"),
        ]  # fmt: skip
        if local.chunked == "full":
            facts += [
                ("chunked attention turns the hybrid allocator off", cfg,
                 r"attention_chunk_size is not None[\s\S]{0,900}?"
                 r"VLLM_ALLOW_CHUNKED_LOCAL_ATTN_WITH_HYBRID_KV_CACHE"),
                ("chunked layers then promoted to full attention",
                 r"vllm/v1/core/kv_cache_utils\.py",
                 r"ChunkedLocalAttentionSpec: FullAttentionSpec"),
            ]  # fmt: skip
        return facts
    where = r"sglang/srt/configs/model_config\.py"
    facts = [
        (f"SWA pool at {local.pool_ratio:g} of the full pool",
         r"sglang/srt/arg_groups/fields/schedule\.py",
         rf"swa_full_tokens_ratio:[\s\S]{{0,600}}?fallback={local.pool_ratio:g},"),
        (f"eviction every {local.pool_slack - 1} tokens", r"sglang/srt/environ\.py",
         rf"SGLANG_SWA_EVICTION_INTERVAL = EnvInt\({local.pool_slack - 1}\)"),
    ]  # fmt: skip
    facts += [(f"SWA pool allowlist names {arch}", where, rf"\"{arch}\"")
              for arch in local.pool_archs]  # fmt: skip
    return facts


def check_facts(spec: EngineSpec, archive: Path) -> list[str]:
    """Print each fact with whether the release shows it; return the missing ones."""
    texts = dict(_sources(archive))
    missing = []
    for what, file_pattern, pattern in _facts(spec):
        found = any(re.search(pattern, text) for path, text in texts.items()
                    if re.fullmatch(file_pattern, path))  # fmt: skip
        missing += [] if found else [what]
        print(f"  {'ok     ' if found else 'MISSING'} {what}")
    return missing


def emitted_flags(engine: str) -> dict[str, list[str]]:
    """Every flag the planner writes for ``engine`` over a matrix of models: flag -> cases."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests._synthetic import LLAMA3_8B, LLAMA3_70B, LLAMA_405B, config_folder

    if engine in ("moshi", "personaplex"):
        return _duplex_flags(engine)

    cases = {
        "8B on L4": (LLAMA3_8B, {"gpu": "l4"}),
        "8B on H100": (LLAMA3_8B, {"gpu": "h100"}),
        "8B on H100 at 32k x 16 (fp8 KV cache)": (
            LLAMA3_8B,
            {"gpu": "h100", "context": 32768, "concurrency": 16},
        ),
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


def _duplex_flags(engine: str) -> dict[str, list[str]]:
    """The flags planned for a Kyutai-layout checkpoint of the engine's shape."""
    from tests._synthetic import kyutai_checkpoint

    variant = "personaplex" if engine == "personaplex" else "moshiko"
    out: dict[str, list[str]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = kyutai_checkpoint(Path(tmp) / variant, variant, voices=engine == "personaplex")
        for gpu in ("h100", "a100-80gb"):
            plan = plan_deployment(inspect_model(str(folder)), engine=engine, gpu=gpu)
            for arg in plan.command.args:
                if arg.startswith("--"):
                    out.setdefault(arg, []).append(f"{variant} on {gpu}")
    return out


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ARG_FILES:
        print(__doc__, file=sys.stderr)
        return 2
    engine, archive = argv[0], Path(argv[1])
    spec = engine_catalog()[engine]
    defined = defined_flags(engine, archive)
    if len(defined) < MIN_FLAGS.get(engine, 50):
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
    print(f"{engine}: the facts the generated files rely on")
    facts_missing = check_facts(spec, archive)
    if missing or facts_missing:
        print(f"{len(missing)} flag(s) hfdeploy writes are not defined by {archive.name}; "
              f"{len(facts_missing)} catalog fact(s) it does not show")  # fmt: skip
        return 1
    print(f"all {len(emitted)} flags hfdeploy writes for {engine} are defined by {archive.name}, "
          "and it shows every catalog fact checked")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
