"""Weight deltas: named additive updates to a model's Hugging Face parameters.

Every editor produces a list of `WeightDelta`s. Applying one adds its tensor to
the live parameter; reverting restores a saved copy of the original bytes, so
revert is bit-identical even where float addition is not invertible.
"""
from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import torch

from factlocate import arch
from factlocate.errors import FactlocateError
from factlocate.io import atomic_path


@dataclass
class WeightDelta:
    """Add `delta` to the HF parameter called `name` (shapes must match)."""

    name: str
    delta: torch.Tensor
    _saved: torch.Tensor | None = field(default=None, repr=False, compare=False)

    def __post_init__(self):
        self.delta = self.delta.detach()

    @property
    def applied(self) -> bool:
        return self._saved is not None

    def apply(self, model) -> None:
        if self.applied:
            raise FactlocateError(f"delta on {self.name} is already applied")
        p = arch.hf_parameter(model, self.name)
        if p.shape != self.delta.shape:
            raise FactlocateError(
                f"delta on {self.name} has shape {tuple(self.delta.shape)}, "
                f"the parameter has {tuple(p.shape)}"
            )
        with torch.no_grad():
            self._saved = p.detach().clone()
            p.add_(self.delta.to(device=p.device, dtype=p.dtype))

    def revert(self, model) -> None:
        if not self.applied:
            raise FactlocateError(f"delta on {self.name} is not applied")
        with torch.no_grad():
            arch.hf_parameter(model, self.name).copy_(self._saved)
        self._saved = None


def apply(model, deltas: list[WeightDelta]) -> None:
    for d in deltas:
        d.apply(model)


def revert(model, deltas: list[WeightDelta]) -> None:
    """Revert in reverse order, so overlapping deltas restore the original exactly."""
    for d in reversed(deltas):
        d.revert(model)


@contextlib.contextmanager
def applied(model, deltas: list[WeightDelta]):
    """Apply `deltas` for the duration of a `with` block."""
    apply(model, deltas)
    try:
        yield model
    finally:
        revert(model, [d for d in deltas if d.applied])


def merge(deltas: list[WeightDelta]) -> list[WeightDelta]:
    """Sum deltas that touch the same parameter."""
    out: dict[str, torch.Tensor] = {}
    for d in deltas:
        out[d.name] = out[d.name] + d.delta if d.name in out else d.delta.clone()
    return [WeightDelta(n, t) for n, t in out.items()]


def save(deltas: list[WeightDelta], path: str | Path, metadata: dict | None = None) -> Path:
    """Write deltas (summed per parameter) to a safetensors file, atomically."""
    from safetensors.torch import save_file

    merged = merge(deltas)
    meta = {"factlocate": json.dumps(metadata or {}, default=str)}
    with atomic_path(path) as tmp:
        save_file({d.name: d.delta.contiguous().cpu() for d in merged}, str(tmp), metadata=meta)
    return Path(path)


def load(path: str | Path) -> tuple[list[WeightDelta], dict]:
    """Read deltas and their metadata from a safetensors file."""
    from safetensors import safe_open

    path = Path(path)
    if not path.exists():
        raise FactlocateError(f"delta file {path} does not exist")
    with safe_open(str(path), framework="pt") as f:
        meta = json.loads((f.metadata() or {}).get("factlocate", "{}"))
        return [WeightDelta(k, f.get_tensor(k)) for k in f.keys()], meta


# ---------------------------------------------------------------- low-rank storage

LOW_RANK_TOLERANCE = 1e-6  # singular values below this share of the largest are float rounding


def low_rank(delta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(A [m, r], B [r, n]) with A @ B equal to the 2-D `delta` to float32 rounding, where storing them takes at
    most a quarter of the matrix's room (ROME's rank 1, MEMIT's and AlphaEdit's rank of at most the requests per
    layer); None for a delta that is not low-rank (fine-tuning's)."""
    if delta.dim() != 2:
        return None
    u, s, vh = torch.linalg.svd(delta.detach().double().cpu(), full_matrices=False)
    r = int((s > s[0] * LOW_RANK_TOLERANCE).sum()) if s.numel() and s[0] > 0 else 0
    m, n = delta.shape
    if r * (m + n) * 4 > m * n:
        return None
    return (u[:, :r] * s[:r]).to(torch.float32), vh[:r].to(torch.float32)


def save_low_rank(deltas: list[WeightDelta], path: str | Path) -> bool:
    """Write every delta (summed per parameter) as low-rank factors; False, writing nothing, if one is not low-rank."""
    from safetensors.torch import save_file

    tensors = {}
    for d in merge(deltas):
        factors = low_rank(d.delta)
        if factors is None:
            return False
        tensors[f"{d.name}::A"], tensors[f"{d.name}::B"] = (t.contiguous() for t in factors)
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={"dtypes": json.dumps({d.name: str(d.delta.dtype) for d in deltas})})
    return True


def load_low_rank(path: str | Path) -> list[WeightDelta]:
    """The deltas of `save_low_rank`, rebuilt as A @ B in the dtype they were computed in."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        dtypes = json.loads((f.metadata() or {}).get("dtypes", "{}"))
        names = sorted({k.rsplit("::", 1)[0] for k in f.keys()})
        out = []
        for name in names:
            a, b = f.get_tensor(f"{name}::A").double(), f.get_tensor(f"{name}::B").double()
            dtype = getattr(torch, dtypes.get(name, "torch.float32").replace("torch.", ""))
            out.append(WeightDelta(name, (a @ b).to(dtype)))
    return out


def hf_state_dict(model) -> dict[str, torch.Tensor]:
    """The current weights under their plain HF names (for export)."""
    return {name: p.detach() for name, p in arch.hf_named_parameters(model)}


def export(model, folder: str | Path) -> Path:
    """Save the (edited) model as a Hugging Face folder that transformers reloads.

    The bridge wraps the HF modules, and a GGUF-loaded model cannot call
    `save_pretrained`, so a plain model of the same class is built from the
    config and loaded with the current weights.
    """
    hf = arch.hf_model(model)
    config = type(hf.config).from_dict(
        {k: v for k, v in hf.config.to_dict().items() if k != "quantization_config"}
    )
    plain = type(hf)(config)
    missing, unexpected = plain.load_state_dict(hf_state_dict(model), strict=False)
    missing = [m for m in missing if m not in getattr(plain, "_tied_weights_keys", {}) and "lm_head" not in m]
    if missing or unexpected:
        raise FactlocateError(f"export failed: missing {missing[:3]}, unexpected {unexpected[:3]}")
    if config.tie_word_embeddings if hasattr(config, "tie_word_embeddings") else False:
        plain.tie_weights()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    plain.save_pretrained(folder)
    model.tokenizer.save_pretrained(folder)
    return folder
