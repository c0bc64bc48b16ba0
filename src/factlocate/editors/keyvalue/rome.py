"""ROME: Rank-One Model Editing (Meng et al. 2022, Section 3 and Appendix A).

For each request, in order, on the weights as the previous requests left them:

    k̄   = mean key at the fact token over the context templates   (keys.mean_key)
    u   = C⁻¹ k̄ / |C⁻¹ k̄|                                        (keys.left_vector, key_stats)
    v*  = v_init + δ, δ optimised at the MLP output                 (target_vector.optimise)
    k, Wk = key and MLP output at the fact token of the plain prompt
    right = (v* − Wk) / (k·u)
    ΔW  = u ⊗ right                   ([d_mlp, d_model], stored in the HF orientation)

`consistent_keys=True` uses k̄ instead of the plain prompt's k for the right
vector (then ΔW maps k̄ exactly to v*); the default follows the original code
and the paper's numbers.

    from factlocate.editors.keyvalue import rome
    hp = rome.load("gemma-3-270m")
    result = rome.compute_edit(model, EditRequest("{} plays the sport of", "LeBron James", "football"), hp)
    with result.applied(model): ...
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm

from factlocate import arch, deltas
from factlocate.datasets.corpus import DEFAULT_CORPUS
from factlocate.deltas import WeightDelta
from factlocate.editors.keyvalue import context_templates as ct
from factlocate.editors.keyvalue import key_stats, keys, target_vector
from factlocate.editors.base import Computed, EditRequest, EditResult, Editor, StatsRequest, edit
from factlocate.editors.base import HParams as BaseHParams
from factlocate.errors import FactlocateError

NAME = "rome"


@dataclass
class HParams(BaseHParams):
    EDITOR = NAME
    REQUIRED = ("layer",)

    layer: int | None = None  # from configs/rome/<model>.yaml or --layer
    fact_token: str = "subject_last"
    v_num_grad_steps: int = 20
    v_lr: float = 0.5
    v_weight_decay: float = 0.5
    clamp_norm_factor: float = 4.0
    kl_factor: float = 0.0625
    kl_prompts: list[str] = field(default_factory=lambda: ["{} is a"])
    mom2_adjustment: bool = True
    context_template_lengths: list[list[int]] = field(default_factory=lambda: [[5, 10], [10, 10]])
    seed: int = 0  # seeds the context-template sampling
    stats_corpus: str = DEFAULT_CORPUS
    stats_tokens: int = 200_000
    stats_dtype: str = "float64"
    consistent_keys: bool = False
    fast: bool = True

    def __post_init__(self):
        need = self.require
        need(self.layer is None or (isinstance(self.layer, int) and self.layer >= 0),
             f"layer must be a non-negative integer, got {self.layer!r}")
        need(self.fact_token in keys.FACT_TOKENS,
             f"fact_token {self.fact_token!r} is not one of {', '.join(keys.FACT_TOKENS)}")
        need(self.v_num_grad_steps >= 1, "v_num_grad_steps must be at least 1")
        for name in ("v_lr", "clamp_norm_factor"):
            need(getattr(self, name) > 0, f"{name} must be positive")
        for name in ("v_weight_decay", "kl_factor"):
            need(getattr(self, name) >= 0, f"{name} must be non-negative")
        need(self.stats_dtype in key_stats.DTYPES, f"stats_dtype must be one of {', '.join(key_stats.DTYPES)}")
        need(self.stats_tokens >= 1, "stats_tokens must be positive")
        for p in self.kl_prompts:
            need("{}" in p, f"kl prompt {p!r} has no '{{}}' for the subject")
        need(all(len(x) == 2 and x[0] >= 1 and x[1] >= 0 for x in self.context_template_lengths),
             "context_template_lengths must be a list of [length, count] pairs")

    def stats_request(self) -> StatsRequest | None:
        if not self.mom2_adjustment:
            return None
        return StatsRequest((self.layer,), self.stats_corpus, self.stats_tokens, self.stats_dtype)


def load(model_spec: str | None, overrides: dict | None = None) -> HParams:
    """Hyperparameters from configs/rome/<model>.yaml (else default.yaml) with overrides."""
    return HParams.load(model_spec, overrides)


def covariance(model, hparams: HParams, stats=None):
    """C for the edit layer: from `stats` (KeyStats or tensor) or computed/cached from the corpus."""
    if not hparams.mom2_adjustment:
        return None
    if stats is None:
        stats = key_stats.key_stats(
            model, hparams.layer, hparams.stats_corpus, hparams.stats_tokens, hparams.stats_dtype
        )
    if isinstance(stats, key_stats.KeyStats):
        stats = key_stats.check(stats, model, hparams.layer).cov
    d = int(model.cfg.d_mlp)
    if tuple(stats.shape) != (d, d):
        raise FactlocateError(f"statistics have shape {tuple(stats.shape)}, this model needs ({d}, {d})")
    return stats


def edit_one(model, request: EditRequest, hparams: HParams, cov, templates: list[str]) -> tuple[WeightDelta, dict, dict]:
    """The rank-one delta of one request on the current weights (weights are not changed)."""
    layer, ft = hparams.layer, hparams.fact_token
    timings = {}
    t = time.perf_counter()
    k_bar = keys.mean_key(model, request.prompt, request.subject, templates, layer, ft)
    u = keys.left_vector(k_bar, cov)
    timings["k_bar"] = time.perf_counter() - t

    t = time.perf_counter()
    batch = target_vector.build_batch(
        model, request.prompt, request.subject, request.target_new, templates, ft, hparams.kl_prompts
    )
    with torch.enable_grad():
        res = target_vector.optimise(
            model, batch, arch.hook_mlp_value(layer), layer,
            v_num_grad_steps=hparams.v_num_grad_steps, v_lr=hparams.v_lr,
            v_weight_decay=hparams.v_weight_decay, clamp_norm_factor=hparams.clamp_norm_factor,
            kl_factor=hparams.kl_factor, fast=hparams.fast,
        )
    timings["v_star"] = time.perf_counter() - t

    t = time.perf_counter()
    text = request.text
    k, wk = keys.keys_and_values(model, [text], [keys.lookup_position(model, text, request.subject, ft)], layer)
    k, wk = k[0], wk[0]
    if hparams.consistent_keys:  # W k̄ (+ bias): the value the update then maps k̄ to v*
        w = arch.mlp_out_weight(model, layer).detach().float()
        bias_name = arch.mlp_out_bias_name(model, layer)
        wk = k_bar @ w
        if bias_name:
            wk = wk + arch.hf_parameter(model, bias_name).detach().float()
        k = k_bar
    right = (res.target - wk) / torch.dot(k, u)
    update = torch.outer(u, right)  # [d_mlp, d_model]
    name = arch.mlp_out_name(model, layer)
    delta = WeightDelta(name, arch.to_storage(model, update, layer).to(arch.hf_parameter(model, name).dtype))
    timings["update"] = time.perf_counter() - t
    extra = {"u": u, "k_bar": k_bar, "k": k, "v_init": res.v_init, "v_star": res.target,
             "right": right, "losses": res.losses}
    return delta, extra, timings


def compute_edit(model, requests, hparams: HParams, stats=None, templates: list[str] | None = None,
                 progress: bool = True, **options) -> EditResult:
    """Edit `requests` (one or a list) one after another; the model's weights are left as found.

    `stats`: a KeyStats or a [d_mlp, d_mlp] tensor for the edit layer (computed and
    cached from `hparams.stats_corpus` when omitted). `templates`: context
    templates to use instead of the model-generated ones.
    """
    if hparams.layer is not None:
        arch.check_layer(model, hparams.layer)
    for r in [requests] if isinstance(requests, EditRequest) else list(requests or []):
        keys.lookup_position(model, r.text, r.subject, hparams.fact_token)  # fail before any work

    def compute(requests: list[EditRequest]) -> Computed:
        timings = {"stats": 0.0, "templates": 0.0, "k_bar": 0.0, "v_star": 0.0, "update": 0.0}
        t = time.perf_counter()
        cov = covariance(model, hparams, stats)
        timings["stats"] = time.perf_counter() - t
        t = time.perf_counter()
        chosen = templates
        if chosen is None:
            chosen = ct.context_templates(model, hparams.context_template_lengths, hparams.seed)
        chosen = ct.check(chosen)
        timings["templates"] = time.perf_counter() - t
        applied, extras = [], []
        try:
            for r in tqdm(requests, desc="rome", disable=not progress or len(requests) == 1):
                delta, extra, tm = edit_one(model, r, hparams, cov, chosen)
                for key, value in tm.items():
                    timings[key] += value
                delta.apply(model)  # the next request is edited on these weights
                applied.append(delta)
                extras.append(extra)
        finally:
            deltas.revert(model, applied)
        return Computed([WeightDelta(d.name, d.delta) for d in applied],
                        {"per_request": extras, "templates": chosen}, timings)

    return edit(NAME, model, requests, hparams, compute, options)


EDITOR = Editor(NAME, HParams, compute_edit, inputs=("templates", "stats"), batched=False)
