"""What both engines share: trace parameters, the prepared prompt, and site definitions.

A *job* is one grid to fill: a site kind (hidden, mlp, attn), optionally a
severed module kind (mlp or attn, hidden traces only). A *site* is one cell
(token position, layer) of a job's grid.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from factlocate import arch, tokens
from factlocate.errors import FactlocateError
from factlocate.tracing.noise import Noise

KINDS = ("hidden", "mlp", "attn")
ENGINES = ("batched", "naive")
NOISE_DRAWS = ("same", "reference")


@dataclass(frozen=True)
class TraceParams:
    """How to trace: validated on construction."""

    kind: str = "hidden"
    samples: int = 10
    window: int = 10
    seed: int = 1
    sever: str | None = None  # mlp | attn: hold those outputs at their corrupted values
    noise_draws: str = "same"  # reference: the second pass of a severed trace draws new noise
    engine: str = "batched"
    chunk_rows: int = 256  # rows per forward pass of the batched engine

    def __post_init__(self):
        if self.kind not in KINDS:
            raise FactlocateError(f"unknown kind {self.kind!r}: use hidden, mlp, attn (or all on the CLI)")
        if not isinstance(self.samples, int) or self.samples < 1:
            raise FactlocateError(f"samples must be a positive integer, got {self.samples!r}")
        if not isinstance(self.window, int) or self.window < 1:
            raise FactlocateError(f"window must be a positive integer, got {self.window!r}")
        if not isinstance(self.seed, int):
            raise FactlocateError(f"seed must be an integer, got {self.seed!r}")
        if self.sever not in (None, "mlp", "attn"):
            raise FactlocateError(f"unknown sever {self.sever!r}: use mlp or attn")
        if self.sever and self.kind != "hidden":
            raise FactlocateError("a severed trace restores hidden states: use kind='hidden' with sever")
        if self.noise_draws not in NOISE_DRAWS:
            raise FactlocateError(f"unknown noise_draws {self.noise_draws!r}: use same or reference")
        if self.engine not in ENGINES:
            raise FactlocateError(f"unknown engine {self.engine!r}: use batched or naive")
        if self.chunk_rows < 1:
            raise FactlocateError("chunk_rows must be at least 1")


@dataclass
class Prepared:
    """A prompt ready to trace: ids, subject range, clean answer, noise."""

    ids: list[int]
    subject_range: tuple[int, int]
    answer_id: int
    high_score: float
    noise: Noise
    samples: int
    seed: int
    n_layers: int

    def ids_tensor(self, rows: int) -> torch.Tensor:
        return torch.tensor([self.ids] * rows, dtype=torch.long)


def window_layers(layer: int, window: int, n_layers: int) -> range:
    """Layers restored for an mlp/attn site at `layer`: [max(0, l - w//2), min(L, l - w//2 + w)).

    The original writes the end as `l - (-w // 2)`, i.e. l + ceil(w/2); since
    w - w//2 == ceil(w/2) for every integer w, the two definitions coincide.
    """
    return range(max(0, layer - window // 2), min(n_layers, layer - window // 2 + window))


def module_hook(kind: str, layer: int) -> str:
    """hook_mlp_out / hook_attn_out of `layer`."""
    return arch.hook_mlp_out(layer) if kind == "mlp" else arch.hook_attn_out(layer)


@torch.no_grad()
def clean_prediction(model, ids: list[int]) -> tuple[int, float]:
    """The clean run's top-1 next token and its probability."""
    logits = model(torch.tensor([ids], dtype=torch.long, device=model.cfg.device))
    probs = torch.softmax(logits[0, -1].float(), dim=-1)
    p, i = probs.max(-1)
    return int(i), float(p)


def prepare(model, prompt: str, subject: str, params: list[TraceParams], noise: Noise) -> Prepared:
    """Tokenise, locate the subject, check the windows and find the clean answer."""
    if not isinstance(prompt, str) or not prompt.strip():
        raise FactlocateError("the prompt is empty")
    n_layers = arch.n_layers(model)
    for p in params:
        if p.kind != "hidden" and p.window > n_layers:
            raise FactlocateError(
                f"window {p.window} is larger than the model's {n_layers} layers: use --window {n_layers} or less"
            )
    ids = tokens.encode(model, prompt)
    b, e = tokens.subject_range(model, prompt, subject)
    answer, high = clean_prediction(model, ids)
    return Prepared(ids, (b, e), answer, high, noise, params[0].samples, params[0].seed, n_layers)
