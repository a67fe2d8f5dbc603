"""``hfdeploy fetch MODEL@REV --to DIR`` and ``hfdeploy fetch --verify DIR``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from hfdeploy.cli._output import Output, gib, handle_errors
from hfdeploy.errors import InvalidSettingError

__all__ = ["fetch_command"]


def fetch_command(
    model: Annotated[
        str | None, typer.Argument(help="owner/name@revision (a branch, tag or commit).")
    ] = None,
    to: Annotated[Path | None, typer.Option(help="Folder to download into.")] = None,
    verify: Annotated[
        Path | None, typer.Option(help="Re-check a fetched folder against its model.lock.json.")
    ] = None,
    include: Annotated[
        list[str] | None,
        typer.Option(
            help="Also fetch files matching this pattern (repeatable), e.g. '*Q4_K_M.gguf'."
        ),
    ] = None,
    allow_pickle: Annotated[
        bool, typer.Option("--allow-pickle", help="Fetch pickle weights (can run code).")
    ] = False,
    prepare: Annotated[
        Path | None,
        typer.Option(
            help="Write what a model's server reads besides its files into a folder you "
            "copied yourself (full-duplex models: voices unpacked, the LM's config, a Hub "
            "cache entry, under .hfdeploy/); fetch does it after every download."
        ),
    ] = None,
    json_: Annotated[bool, typer.Option("--json", help="Print the lock as JSON.")] = False,
) -> None:
    """Download a model pinned to one commit, safetensors only, with a sha256 lock."""
    from hfdeploy.model.fetch import fetch_model, prepare_folder
    from hfdeploy.model.lock import verify_folder

    out = Output(json_mode=json_)
    with handle_errors(json_mode=json_):
        if prepare is not None:
            written = prepare_folder(prepare)
            if json_:
                out.data({"folder": str(prepare), "prepared": written})
            else:
                out.print(f"prepared {prepare}: " + ("; ".join(written) or "nothing needed"))
            return
        if verify is not None:
            lock = verify_folder(verify)
            if json_:
                out.data(lock.to_dict())
            else:
                out.print(
                    f"ok: {len(lock.files)} files, {gib(lock.total_bytes)}, match "
                    f"{lock.repo_id}@{lock.commit_sha}"
                )
            return
        if model is None or to is None:
            raise InvalidSettingError(
                "arguments", model, "give MODEL@REV and --to DIR, or --verify DIR",
                hint="hfdeploy fetch org/name@main --to ./models/name",
            )  # fmt: skip
        lock, plan = fetch_model(model, to, allow_pickle=allow_pickle, include=include or ())
    if json_:
        out.data(lock.to_dict())
        return
    out.print(
        f"fetched {lock.repo_id}@{lock.revision} = commit {lock.commit_sha}: "
        f"{len(lock.files)} files, {gib(lock.total_bytes)} -> {to}"
    )
    for name, why in plan.skipped:
        out.print(f"  skipped {name}: {why}")
    for name in plan.prepared:
        out.print(f"  prepared {name}")
    out.print(f"lock: {to / 'model.lock.json'}  (check later: hfdeploy fetch --verify {to})")
