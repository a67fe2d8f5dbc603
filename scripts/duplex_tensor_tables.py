"""Write the tensor tables (name, shape, dtype) of the Moshi and PersonaPlex checkpoints.

The tests build Kyutai-layout checkpoints (safetensors headers with sparse data) from these
tables, with the real tensor names and shapes, without the ``moshi`` package. Regenerate
them from the package (Kyutai's ``moshi`` 0.2.13 on PyPI declares torch<2.10 but builds on
the meta device with newer torch when installed without its dependencies):

    pip install --no-deps --target /tmp/moshi-pkg moshi==0.2.13 einops sentencepiece
    PYTHONPATH=/tmp/moshi-pkg .venv-dev/bin/python scripts/duplex_tensor_tables.py

The language model is instantiated with the package's default arguments (the 7B Moshiko
shape, 8 depformer steps) and with 16 depformer steps, as PersonaPlex's loader sets; the
Mimi codec with its defaults. Its state dict, buffers included, is what the files hold.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parents[1] / "tests" / "data" / "duplex"


def _table(state: dict[str, Any]) -> list[list[Any]]:
    names = {"torch.bfloat16": "BF16", "torch.float32": "F32", "torch.float16": "F16"}
    return [[k, list(v.shape), names[str(v.dtype)]] for k, v in state.items()]


def main() -> None:
    import torch
    from moshi.models import loaders
    from moshi.models.lm import LMModel

    kwargs = dict(loaders._lm_kwargs)
    OUT.mkdir(parents=True, exist_ok=True)
    for name, over in (("moshiko", {}), ("personaplex", {"dep_q": 16})):
        with torch.device("meta"):
            lm = LMModel(device="meta", dtype=torch.bfloat16, **(kwargs | over))
        (OUT / f"{name}_lm.json").write_text(json.dumps(_table(lm.state_dict())) + "\n")
    with torch.device("meta"):
        mimi = loaders.get_mimi(None, device="meta")
    (OUT / "mimi.json").write_text(json.dumps(_table(mimi.state_dict())) + "\n")
    for f in sorted(OUT.glob("*.json")):
        rows = json.loads(f.read_text())
        total = 0
        for _, shape, _ in rows:
            n = 1
            for d in shape:
                n *= d
            total += n
        print(f"{f.name}: {len(rows)} tensors, {total:,} parameters")


if __name__ == "__main__":
    main()
