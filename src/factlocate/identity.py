"""Model identity: what a loaded model is, made once in `load_model` and kept on the model.

Every cache (key statistics, context templates, pre-edit metrics) keys on
`identity(model).key`: a file-safe name plus a fingerprint of the weights, so a
hub model whose weights changed under the same name never reuses stale files.

The same per-model state also holds the results of the checks that are made
once per loaded model (`ModelState.checks`, see `factlocate.forward.kv`).
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field

import torch

from factlocate.errors import FactlocateError

STATE_ATTRIBUTE = "factlocate_state"
SAMPLE_VALUES = 4096  # values hashed per parameter: a strided sample, so large models hash fast


@dataclass(frozen=True)
class ModelIdentity:
    """The spec a model was loaded from, a fingerprint of its weights at load time, and a file-safe name."""

    spec: str
    fingerprint: str  # 16 hex digits of a SHA-256 over parameter names, shapes and sampled values

    @property
    def name(self) -> str:
        """The spec's last path part, lower-case, file-safe ('gemma-3-270m', 'gpt2-xl')."""
        stem = self.spec.rstrip("/").split("/")[-1].lower() or "model"
        return re.sub(r"[^a-z0-9._-]+", "_", stem)

    @property
    def key(self) -> str:
        """Cache key: name plus fingerprint ('smollm2-135m-3f2a9c0d1b7e4a55')."""
        return f"{self.name}-{self.fingerprint}"


@dataclass
class ModelState:
    """What factlocate keeps on a loaded model: its identity, one-time check verdicts, parameter names."""

    identity: ModelIdentity
    checks: dict[str, bool] = field(default_factory=dict)
    parameter_names: dict[int, str] | None = None  # id(live parameter) -> HF name, see `arch`


def fingerprint(model) -> str:
    """A hash of every parameter's name and shape and a strided sample of its values (float32 bytes)."""
    digest = hashlib.sha256(type(model).__name__.encode())
    parameters = model.named_parameters() if hasattr(model, "named_parameters") else []
    with torch.no_grad():
        for name, p in sorted(parameters, key=lambda item: item[0]):
            flat = p.detach().reshape(-1)
            step = max(1, flat.numel() // SAMPLE_VALUES)
            sample = flat[::step][:SAMPLE_VALUES].float().cpu().contiguous()
            digest.update(f"{name}:{tuple(p.shape)}".encode())
            digest.update(sample.numpy().tobytes())
    return digest.hexdigest()[:16]


def attach(model, spec: str) -> ModelState:
    """Make and store the model's identity (called once by `load_model`)."""
    state = ModelState(ModelIdentity(str(spec), fingerprint(model)))
    setattr(model, STATE_ATTRIBUTE, state)
    return state


def state(model) -> ModelState:
    """The model's state; a model not loaded by `load_model` gets one named after its config."""
    found = getattr(model, STATE_ATTRIBUTE, None)
    if found is None:
        spec = getattr(getattr(model, "cfg", None), "model_name", None) or type(model).__name__
        found = attach(model, spec)
    return found


def identity(model) -> ModelIdentity:
    return state(model).identity


def check_unedited(model, what: str) -> None:
    """Refuse to make `what` for a cache keyed on the load-time fingerprint from weights changed since then.

    Such a file would be reused as the unedited model's by every later run (an applied edit at one MLP
    layer changes every later layer's keys, and what the model generates).
    """
    if fingerprint(model) != identity(model).fingerprint:
        raise FactlocateError(f"{what} would be cached as the unedited model's, but the weights are not those it "
                              "was loaded with (an edit is applied): make it on the unedited model first")

