"""What both engines share: the run and grid specs, the prepared prompt, and site definitions.

A trace of one prompt is one *run* (`RunSpec`: corrupted samples, noise, seed,
engine) that fills one or more *grids* (`GridSpec`: which states are restored,
over which window, with which path severed). A *site* is one cell
(token position, layer) of a grid.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from factlocate import arch, tokens
from factlocate.errors import FactlocateError
from factlocate.forward import control
from factlocate.tracing import corruption
from factlocate.tracing.corruption import Corruption
from factlocate.tracing.readout import METRICS, Readout

KINDS = ("hidden", "mlp", "attn")
ENGINES = ("batched", "naive")
NOISE_DRAWS = ("same", "reference")
BUDGET_DEFAULT = {"hidden": 0.1, "mlp": 0.3, "attn": 0.05}  # atp+budget, chosen on dev facts (see RunSpec)
REFINE_DEFAULT = 2
METHODS = ("exact", "atp", "atp+verify", "atp+budget")


@dataclass(frozen=True)
class RunSpec:
    """How one prompt is corrupted and traced; shared by all of its grids. Validated on construction."""

    samples: int = 10  # corrupted runs per site
    noise: str = "s3"  # noise spec (see `noise.parse_noise`)
    replace: bool = False  # replace the subject embeddings by the noise instead of adding it
    seed: int = 1  # seeds the RandomState the noise is drawn from
    engine: str = "batched"  # batched (default) or naive (one forward per site)
    chunk_rows: int = 256  # rows per forward pass of the batched engine
    method: str = "exact"  # exact, atp (attribution patching), atp+verify (AtP, then the top sites exactly, with a
    # bound) or atp+budget (AtP, then a fixed share of the sites exactly)
    corrupt: str = "noise"  # a registered corruption (`corruption.CORRUPTIONS`): noise (the paper's), str, ...
    metric: str = "prob"  # prob (the paper's), logprob or logit_diff
    top: int = 10  # atp+verify: sites per grid verified exactly (plus those the bound cannot rule out)
    graddrop: bool = False  # atp: AtP*'s GradDrop against cancellation (one backward pass per layer)
    # atp+budget: the share of each grid's cells (from the subject on) run exactly, one for every kind or one per
    # kind, and the climb's radius in layers (0: none). Defaults chosen on dev facts (the first 50 of 100 per
    # embedded model; docs/atp/budget.json, tools/atp_budget.py, notes/atp.md).
    budget: float | dict = dataclasses.field(default_factory=lambda: dict(BUDGET_DEFAULT))
    refine: int = REFINE_DEFAULT

    def __post_init__(self):
        if not isinstance(self.samples, int) or self.samples < 1:
            raise FactlocateError(f"samples must be a positive integer, got {self.samples!r}")
        if not isinstance(self.seed, int):
            raise FactlocateError(f"seed must be an integer, got {self.seed!r}")
        if self.engine not in ENGINES:
            raise FactlocateError(f"unknown engine {self.engine!r}: use batched or naive")
        if not isinstance(self.chunk_rows, int) or self.chunk_rows < 1:
            raise FactlocateError("chunk_rows must be at least 1")
        if self.method not in METHODS:
            raise FactlocateError(f"unknown method {self.method!r}: use {', '.join(METHODS)}")
        corruption.get(self.corrupt)  # a registered corruption
        if self.metric not in METRICS:
            raise FactlocateError(f"unknown metric {self.metric!r}: use prob, logprob or logit_diff")
        if not isinstance(self.top, int) or self.top < 1:
            raise FactlocateError(f"top must be a positive integer, got {self.top!r}")
        shares = self.budget.values() if isinstance(self.budget, dict) else [self.budget]
        if (isinstance(self.budget, dict) and set(self.budget) != set(KINDS)) or not all(
                isinstance(b, (int, float)) and not isinstance(b, bool) and 0 < b <= 1 for b in shares):
            raise FactlocateError("budget must be a share of cells in (0, 1], or one per kind "
                                  f"(hidden, mlp, attn), got {self.budget!r}")
        if not isinstance(self.refine, int) or isinstance(self.refine, bool) or self.refine < 0:
            raise FactlocateError(f"refine must be a number of layers >= 0, got {self.refine!r}")

    def share(self, kind: str) -> float:
        """atp+budget: the share of `kind`'s cells run exactly before the climb."""
        return float(self.budget[kind] if isinstance(self.budget, dict) else self.budget)

    @classmethod
    def from_dict(cls, d: dict) -> "RunSpec":
        """A saved run; an atp+budget run saved before the climb existed had none, and another method's budget
        never mattered (its saved share is read as today's default, so such a run still resumes)."""
        d = dict(d)
        if d.get("method") == "atp+budget":
            d.setdefault("refine", 0)
        else:
            d.pop("budget", None)
            d.pop("refine", None)
        return cls(**d)


@dataclass(frozen=True)
class GridSpec:
    """One grid: restore `kind` states (hidden, or mlp/attn over `window` layers), optionally severed."""

    kind: str = "hidden"
    window: int = 10
    sever: str | None = None  # mlp | attn: hold those outputs at their corrupted values (hidden only)
    noise_draws: str = "same"  # reference: a severed trace's second pass draws new noise

    def __post_init__(self):
        if self.kind not in KINDS:
            raise FactlocateError(f"unknown kind {self.kind!r}: use hidden, mlp, attn (or all on the CLI)")
        if not isinstance(self.window, int) or self.window < 1:
            raise FactlocateError(f"window must be a positive integer, got {self.window!r}")
        if self.sever not in (None, "mlp", "attn"):
            raise FactlocateError(f"unknown sever {self.sever!r}: use mlp or attn")
        if self.sever and self.kind != "hidden":
            raise FactlocateError("a severed trace restores hidden states: use kind='hidden' with sever")
        if self.noise_draws not in NOISE_DRAWS:
            raise FactlocateError(f"unknown noise_draws {self.noise_draws!r}: use same or reference")


def split_options(options: dict) -> tuple[dict, dict, dict]:
    """Split keyword options into RunSpec fields, GridSpec fields and the rest."""
    run_fields = {f.name for f in dataclasses.fields(RunSpec)}
    grid_fields = {f.name for f in dataclasses.fields(GridSpec)}
    run = {k: v for k, v in options.items() if k in run_fields}
    grid = {k: v for k, v in options.items() if k in grid_fields}
    rest = {k: v for k, v in options.items() if k not in run_fields | grid_fields}
    return run, grid, rest


@dataclass
class Prepared:
    """A prompt ready to trace: ids, subject range, clean answer, corruption, readout and the run spec."""

    ids: list[int]
    subject_range: tuple[int, int]
    answer_id: int
    high_score: float
    corruption: Corruption  # owns the corrupting hook, the logit_diff contrast and its description
    run: RunSpec
    n_layers: int
    d_model: int
    readout: Readout | None = None

    def __post_init__(self):
        if self.readout is None:
            self.readout = Readout("prob", self.answer_id)

    @property
    def samples(self) -> int:
        return self.run.samples

    @property
    def seed(self) -> int:
        return self.run.seed

    def ids_tensor(self, rows: int) -> torch.Tensor:
        return torch.tensor([self.ids] * rows, dtype=torch.long)


def window_layers(layer: int, window: int, n_layers: int) -> range:
    """Layers restored for an mlp/attn site at `layer`: [max(0, l - w//2), min(L, l - w//2 + w)).

    The original writes the end as `l - (-w // 2)`, i.e. l + ceil(w/2); since
    w - w//2 == ceil(w/2) for every integer w, the two definitions coincide.
    """
    return range(max(0, layer - window // 2), min(n_layers, layer - window // 2 + window))


@torch.no_grad()
def last_logits(model, ids: torch.Tensor, hooks=()) -> torch.Tensor:
    """Logits at the last position of every row of `ids` [rows, vocab]."""
    resid = control.run(model, ids, hooks=hooks)
    return control.unembed(model, resid[:, -1])


@torch.no_grad()
def clean_prediction(model, ids: list[int]) -> tuple[int, float]:
    """The clean run's top-1 next token and its probability (logits at the last position only)."""
    probs = torch.softmax(last_logits(model, torch.tensor([ids], dtype=torch.long)).float(), dim=-1)[0]
    p, i = probs.max(-1)
    return int(i), float(p)


def _readout(model, prep: "Prepared") -> tuple[Readout, float]:
    """The run's readout, and the clean score under it (the contrast is the corruption's)."""
    S = prep.samples
    contrast = prep.corruption.contrast(model, prep) if prep.run.metric == "logit_diff" else None
    readout = Readout(prep.run.metric, prep.answer_id, contrast)
    clean = last_logits(model, prep.ids_tensor(1)).expand(S, -1)
    return readout, readout.mean(clean, torch.arange(S))


def prepare(model, prompt: str, subject: str, grids: list[GridSpec], run: RunSpec,
            corrupt: Corruption, answer: str | None = None) -> Prepared:
    """Tokenise, locate the subject, check the windows, find the clean answer and the readout.

    The answer traced is the clean run's top-1 token, or the first token of `answer` where one is given
    (Hase et al. trace the true target's probability whatever the model's top-1)."""
    if not isinstance(prompt, str) or not prompt.strip():
        raise FactlocateError("the prompt is empty")
    n_layers = arch.n_layers(model)
    for g in grids:
        if g.kind != "hidden" and g.window > n_layers:
            raise FactlocateError(
                f"window {g.window} is larger than the model's {n_layers} layers: use --window {n_layers} or less"
            )
    ids = tokens.encode(model, prompt)
    b, e = tokens.subject_range(model, prompt, subject)
    if answer is None:
        answer_id, high = clean_prediction(model, ids)
    else:
        answer_id = tokens.encode_target(model, answer)[0]
        high = float(torch.softmax(last_logits(model, torch.tensor([ids], dtype=torch.long)).float(), -1)[0, answer_id])
    prep = Prepared(ids, (b, e), answer_id, high, corrupt, run, n_layers, int(model.cfg.d_model))
    if run.metric != "prob":
        prep.readout, prep.high_score = _readout(model, prep)
    return prep
