"""Helpers the example notebooks call: which model to load, and where to keep resumable runs.

    MODEL = notebooks.model_spec("gemma-3-270m")   # FACTLOCATE_NOTEBOOK_MODEL overrides it
    FAST = notebooks.fast_mode()                   # True on a tiny random model (the tests)

`model_spec(default)` returns `default`, unless the environment variable
FACTLOCATE_NOTEBOOK_MODEL says otherwise; `tiny` (or `tiny-<arch>`, arch one of
gpt2, gptj, llama, gemma3) builds a tiny random model into the cache folder, which
is how the test suite runs the notebooks fast. Executing the notebooks to HTML is
a developer tool: `make notebooks` (tools/notebooks.py).
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from factlocate.errors import FactlocateError

MODEL_ENV = "FACTLOCATE_NOTEBOOK_MODEL"



def model_spec(default: str) -> str:
    """The model a notebook loads: `default`, unless FACTLOCATE_NOTEBOOK_MODEL says otherwise."""
    spec = os.environ.get(MODEL_ENV, "").strip() or default
    if spec == "tiny" or spec.startswith("tiny-"):
        return str(tiny_model_folder(spec.partition("-")[2] or "gpt2"))
    return spec


def fast_mode() -> bool:
    """True when the notebooks run on a tiny random model (the test suite's setting)."""
    spec = os.environ.get(MODEL_ENV, "").strip()
    return spec == "tiny" or spec.startswith("tiny-")


def work_dir(notebook: str, model: str) -> Path:
    """A folder for a notebook's resumable runs on `model` (under the cache folder)."""
    import re

    from factlocate.models import cache_dir

    key = re.sub(r"[^A-Za-z0-9._-]+", "_", str(model)).strip("_")[-60:] or "model"
    folder = cache_dir() / "notebooks" / notebook / key
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def tiny_model_folder(arch: str = "gpt2") -> Path:
    """A tiny random model of `arch` in the cache folder, built once (atomically)."""
    from factlocate.models import cache_dir
    from factlocate.tiny import ARCHITECTURES, build_tiny_model

    if arch not in ARCHITECTURES:
        raise FactlocateError(
            f"unknown tiny architecture {arch!r} in {MODEL_ENV}; use tiny or tiny-<arch> with "
            f"arch one of {', '.join(ARCHITECTURES)}"
        )
    folder = cache_dir() / "notebook-models" / f"tiny-{arch}"
    if not (folder / "config.json").exists():
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".tiny-{arch}."))
        build_tiny_model(arch, tmp)
        try:
            os.replace(tmp, folder)
        except OSError:  # another process finished first
            shutil.rmtree(tmp, ignore_errors=True)
    return folder
