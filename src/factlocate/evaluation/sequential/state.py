"""A sequential run's state on disk: `state.safetensors`, the accumulated deltas and the editor's State.

    delta.<hf name>   current minus original weights, float64, per edited parameter
    state.<key>       the editor's `State.tensors()` (stateful editors only)
    metadata          batches_done, edit_seconds

It is rewritten atomically after every batch, so a rerun loads it onto the freshly loaded model
and carries on from the next batch.
"""
from __future__ import annotations

import contextlib
from pathlib import Path

import torch

from factlocate import arch
from factlocate.errors import FactlocateError
from factlocate.io import atomic_path

FILE = "state.safetensors"


def save(path: Path, originals: dict, model, editor_state, done: int, seconds: float) -> None:
    from safetensors.torch import save_file

    tensors = {f"delta.{name}": (arch.hf_parameter(model, name).detach().double() - w.double()).cpu()
               for name, w in originals.items()}
    if editor_state is not None:
        tensors.update({f"state.{k}": v.cpu().contiguous() for k, v in editor_state.tensors().items()})
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={"batches_done": str(done), "edit_seconds": repr(seconds)})


def load(path: Path, model, originals: dict, state_cls):
    """Apply the saved deltas to the freshly loaded weights; return (batches done, edit seconds, editor state)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
        done, seconds = int(meta["batches_done"]), float(meta.get("edit_seconds", 0.0))
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    with torch.no_grad():
        for key, d in tensors.items():
            if key.startswith("delta."):
                name = key[len("delta."):]
                p = arch.hf_parameter(model, name)
                originals.setdefault(name, p.detach().clone())
                p.copy_((originals[name].double() + d.to(p.device)).to(p.dtype))
    state = {k[len("state."):]: v for k, v in tensors.items() if k.startswith("state.")}
    return done, seconds, (state_cls.from_tensors(state) if state and state_cls is not None else None)


def restore(model, originals: dict) -> None:
    """Put the original weights back, bit for bit."""
    with torch.no_grad():
        for name, w in originals.items():
            arch.hf_parameter(model, name).copy_(w)


@contextlib.contextmanager
def final_weights(model, folder: str | Path):
    """The model with a run's accumulated deltas applied, as the run left them; restored bit for bit after."""
    state_path = Path(folder) / FILE
    if not state_path.exists():
        raise FactlocateError(f"{folder} holds no sequential state ({FILE})")
    originals: dict[str, torch.Tensor] = {}
    load(state_path, model, originals, None)
    try:
        yield model
    finally:
        restore(model, originals)


def final_deltas(folder: str | Path) -> dict[str, torch.Tensor]:
    """The accumulated deltas of a sequential run (float64), by HF parameter name."""
    from safetensors import safe_open

    with safe_open(str(Path(folder) / FILE), framework="pt") as f:
        return {k[len("delta."):]: f.get_tensor(k) for k in f.keys() if k.startswith("delta.")}
