"""AlphaEdit (Fang et al., ICLR 2025): MEMIT with every update projected onto the null space of preserved keys.

For each edited layer l of R, with C₀ = E[k kᵀ] the layer's key second moment
(the same statistics as ROME and MEMIT):

    C₀ = U S Uᵀ (SVD);  Û = the columns of U whose singular values are below
    `nullspace_threshold`;  P = Û Ûᵀ, the projection onto the directions the
    preserved keys (almost) never use.

The targets Z and the keys K [d_mlp, N] are MEMIT's (`memit.compute_targets`,
`memit.layer_keys`); the residual R = (Z − current) / (layers left) is spread over
the layers as in MEMIT. With K_p the keys of every earlier batch of a sequence,

    ΔWᵀ = solve(P (K Kᵀ + K_p K_pᵀ) + L2·I,  P K Rᵀ)            [d_mlp, d_model], float64

so ΔW k₀ ≈ 0 for every preserved key k₀ (P k₀ ≈ 0): the edit leaves what the
layer does on ordinary text alone. After a batch, K_p K_pᵀ += K Kᵀ with K read on
the edited weights. That running sum and the projections are the editor's
`State`, passed from batch to batch by the sequential protocol
(`factlocate.evaluation.sequential`) and returned in `result.extra["state"]`.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch

from factlocate.deltas import WeightDelta
from factlocate.editors.keyvalue import context_templates as ctx
from factlocate.editors.keyvalue import key_stats, memit
from factlocate.editors.base import Computed, EditRequest, EditResult, Editor, edit
from factlocate.editors.common import check_layers, check_no_conflicts
from factlocate.errors import FactlocateError

NAME = "alphaedit"


@dataclass
class HParams(memit.HParams):
    EDITOR = NAME
    REQUIRED = ("layers", "nullspace_threshold")
    # Inherited and never read here: mom2_update_weight (MEMIT's λ; the L2 term takes its place), so its
    # value is the dataclass default, not the model's MEMIT λ (`tools/alphaedit_scan.memit_part`).

    nullspace_threshold: float | None = None  # absolute, on C₀'s singular values (paper: 2e-2)
    L2: float = 10.0

    def __post_init__(self):
        super().__post_init__()
        self.require(self.nullspace_threshold is None or self.nullspace_threshold > 0,
                     f"nullspace_threshold must be positive, got {self.nullspace_threshold}")
        self.require(self.L2 >= 0, f"L2 must be >= 0, got {self.L2}")
        self.require(self.mom2_adjustment, "alphaedit needs the key statistics (mom2_adjustment: true)")


@dataclass
class State:
    """What AlphaEdit carries from batch to batch: per layer, P and the running K_p K_pᵀ."""

    projections: dict[int, torch.Tensor]  # layer -> P [d_mlp, d_mlp], float64
    preserved: dict[int, torch.Tensor]  # layer -> Σ K_p K_pᵀ over earlier batches, float64
    kept: dict[int, int] = field(default_factory=dict)  # layer -> directions in the null space

    def tensors(self) -> dict[str, torch.Tensor]:
        """For safetensors: 'P.<layer>' and 'KpKp.<layer>'."""
        out = {f"P.{l}": p for l, p in self.projections.items()}
        out.update({f"KpKp.{l}": c for l, c in self.preserved.items()})
        return out

    @classmethod
    def from_tensors(cls, tensors: dict[str, torch.Tensor]) -> "State":
        projections = {int(k.split(".")[1]): v for k, v in tensors.items() if k.startswith("P.")}
        preserved = {int(k.split(".")[1]): v for k, v in tensors.items() if k.startswith("KpKp.")}
        return cls(projections, preserved, {l: _rank(p) for l, p in projections.items()})


def _rank(p: torch.Tensor) -> int:
    return int(round(float(torch.trace(p))))


def projection(cov: torch.Tensor, threshold: float) -> tuple[torch.Tensor, int]:
    """P = Û Ûᵀ over the singular vectors of `cov` with singular values below `threshold`; and how many."""
    u, s, _ = torch.linalg.svd(cov.to(torch.float64), full_matrices=False)
    small = u[:, s < threshold]
    return small @ small.T, int(small.shape[1])


def spectrum(cov: torch.Tensor, thresholds: list[float]) -> list[tuple[float, int, float]]:
    """For each threshold: how many of C₀'s directions fall below it (the null space AlphaEdit would keep),
    and their share of C₀'s trace, i.e. how much of what preserved keys do the projection would overwrite."""
    s = torch.linalg.svdvals(cov.to(torch.float64))
    return [(t, int((s < t).sum()), float(s[s < t].sum() / s.sum())) for t in thresholds]


def initial_state(model, hp: HParams, progress: bool = True) -> State:
    """P for every layer of R from its key statistics, and no preserved edit keys yet."""
    layers = check_layers(model, hp.layers)
    stats = key_stats.for_hparams(model, hp, progress)  # mom2_adjustment is required (HParams)
    projections, kept, preserved = {}, {}, {}
    for layer in layers:
        projections[layer], kept[layer] = projection(stats[layer].cov, hp.nullspace_threshold)
        preserved[layer] = torch.zeros_like(projections[layer])
    empty = [layer for layer in layers if kept[layer] == 0]
    if empty:  # P = 0 would make every update exactly zero
        smallest = min(float(torch.linalg.svdvals(stats[layer].cov.to(torch.float64)).min()) for layer in empty)
        raise FactlocateError(
            f"alphaedit: no singular value of C0 at layer(s) {empty} is below nullspace_threshold "
            f"{hp.nullspace_threshold:g} (the smallest is {smallest:.3g}), so the null space is empty and every "
            f"update would be zero; pass --set nullspace_threshold=... above it (factlocate stats --spectrum "
            "shows how many directions each threshold keeps)")
    return State(projections, preserved, kept)


def prepare(model, hparams: HParams) -> dict:
    """The unedited model's projections, for an evaluation that edits each case from the original weights."""
    return {"state": initial_state(model, hparams, progress=False)}


def compute_edit(model, requests, hparams: HParams, progress: bool = True, templates=None, state: State | None = None,
                 **options) -> EditResult:
    """Edit all `requests` at once; `state` carries P and K_p K_pᵀ from earlier batches of a sequence."""
    if hparams.layers is not None:
        check_layers(model, hparams.layers)

    def compute(requests: list[EditRequest]) -> Computed:
        check_no_conflicts(requests)
        return _compute(model, requests, hparams, templates, state, progress)

    return edit(NAME, model, requests, hparams, compute, options)


def _update(k: torch.Tensor, resid: torch.Tensor, p: torch.Tensor, preserved: torch.Tensor, l2: float) -> torch.Tensor:
    """ΔWᵀ = solve(P (K Kᵀ + K_p K_pᵀ) + L2·I, P K Rᵀ): [d_mlp, d_model]."""
    eye = torch.eye(k.shape[0], dtype=torch.float64, device=k.device)
    return torch.linalg.solve(p @ (k @ k.T + preserved) + l2 * eye, p @ k @ resid.T)


def _compute(model, requests, hparams: HParams, templates, state: State | None, progress: bool) -> Computed:
    check_layers(model, hparams.layers)
    timings = {}
    t = time.perf_counter()
    state = state or initial_state(model, hparams, progress)
    timings["projections"] = time.perf_counter() - t
    if templates is None:
        templates = ctx.context_templates(model, hparams.context_template_lengths, seed=hparams.seed)
    templates = ctx.check(templates)
    t = time.perf_counter()
    zs, z_logs = memit.compute_targets(model, requests, templates, hparams, progress)
    timings["targets"] = time.perf_counter() - t
    t = time.perf_counter()
    deltas, norms, new_state = write_layers(model, requests, templates, zs, hparams, state, progress)
    timings["layers"] = time.perf_counter() - t
    extra = {"templates": templates, "target_losses": z_logs, "layer_norms": norms, "state": new_state,
             "kept_directions": dict(state.kept)}
    return Computed(deltas, extra, timings)


def write_layers(model, requests, templates, zs: torch.Tensor, hparams: HParams, state: State,
                 progress: bool = False) -> tuple[list[WeightDelta], list[dict], State]:
    """The projected updates that write the targets `zs` [d_model, N] (`memit.spread`); the model is left as it
    was. Returns the deltas, each layer's residual and update norms, and the state for the next batch."""

    def update(layer: int, k: torch.Tensor, resid: torch.Tensor) -> torch.Tensor:
        p, preserved = state.projections[layer].to(k.device), state.preserved[layer].to(k.device)
        return _update(k, resid, p, preserved, hparams.L2)

    def preserved_after() -> dict[int, torch.Tensor]:
        """The keys of this batch, read on the edited weights, join the preserved keys."""
        out = {}
        for layer in hparams.layers:
            k = memit.layer_keys(model, requests, templates, layer, hparams.fact_token).double()
            out[layer] = state.preserved[layer] + (k @ k.T).to(state.preserved[layer].device)
        return out

    deltas, norms, preserved = memit.spread(model, requests, templates, zs, hparams, update, preserved_after,
                                            progress)
    return deltas, norms, State(state.projections, preserved, dict(state.kept))


EDITOR = Editor(NAME, HParams, compute_edit, inputs=("templates", "state"), State=State, prepare=prepare)
