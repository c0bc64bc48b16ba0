"""MEMIT (Meng et al. 2023): edit many facts at once, spread over a range of MLP layers R.

For N requests, with L = the last layer of R:

1. Targets. For each request, z_i = h_L + delta_i, with h_L the residual output
   of block L at the last subject token, and delta_i optimised like ROME's v*
   (`target_vector.optimise` at `arch.hook_resid(L)`): the rewriting prompts are
   "{}" and 5 generated 10-token contexts filled with the prompt and the target
   prefix, plus the KL prompt "{} is a"; loss = NLL + kl_factor * KL +
   v_weight_decay * |delta| / |h_L|^2, |delta| clamped to clamp_norm_factor * |h_L|.
2. For each layer l of R in order, on the weights edited so far:
   K   = keys at layer l: per request 0.5 * (plain-prompt key) + 0.5 * (mean key
         over the generated contexts)                             [d_mlp, N]
   cur = block-L residual at the last subject token of the plain prompts
   resid = (Z - cur) / (number of layers of R from l on)          [d_model, N]
         (where the MLP output passes a norm before the residual, as in Gemma,
         resid becomes the value change that moves the normed output by it:
         `post_norm`)
   dW  = resid ((lambda C + K K^T)^-1 K)^T   (float64 solve)       [d_model, d_mlp]
   with C = E[k k^T] the key second moment of layer l (`key_stats`), lambda =
   mom2_update_weight; W_l += dW before the next layer's keys are computed.
3. The weights are restored; the result holds one delta per layer of R.

Two requests for the same subject and relation with different targets are rejected.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
from jaxtyping import Float
from tqdm.auto import tqdm

from factlocate import arch, tokens
from factlocate import deltas as deltas_mod
from factlocate.datasets.corpus import DEFAULT_CORPUS
from factlocate.deltas import WeightDelta
from factlocate.editors.keyvalue import context_templates as ctx
from factlocate.editors.keyvalue import key_stats, keys, post_norm, target_batch, target_vector
from factlocate.editors.base import Computed, EditRequest, EditResult, Editor, StatsRequest, edit
from factlocate.editors.base import HParams as BaseHParams
from factlocate.editors.common import check_layers, check_no_conflicts
from factlocate.forward import control

NAME = "memit"


@dataclass
class HParams(BaseHParams):
    EDITOR = NAME
    REQUIRED = ("layers",)

    layers: list[int] | None = None  # the range R: from configs/memit/<model>.yaml or --layer
    fact_token: str = "subject_last"
    v_num_grad_steps: int = 25
    v_lr: float = 0.5
    v_weight_decay: float = 0.5
    clamp_norm_factor: float = 0.75
    kl_factor: float = 0.0625
    mom2_update_weight: float = 15000.0
    mom2_adjustment: bool = True  # False: C = identity (no key statistics)
    stats_corpus: str = DEFAULT_CORPUS
    stats_tokens: int = 200_000
    stats_dtype: str = "float64"
    context_template_lengths: list[list[int]] = field(default_factory=lambda: [[10, 5]])
    seed: int = 0  # seeds the context templates and each target's optimisation
    batch_targets: bool = True  # optimise the targets of up to `target_batch_size` requests together
    target_batch_size: int = 16

    def __post_init__(self):
        need = self.require
        if isinstance(self.layers, int):
            self.layers = [self.layers]
        if self.layers is not None:
            need(len(self.layers) > 0, "needs a non-empty layer range (layers: [..])")
            need(all(isinstance(l, int) and l >= 0 for l in self.layers),
                 f"layers must be non-negative integers, got {self.layers}")
        need(self.fact_token in keys.FACT_TOKENS,
             f"unknown fact_token {self.fact_token!r}; choose from {', '.join(keys.FACT_TOKENS)}")
        need(isinstance(self.v_num_grad_steps, int) and self.v_num_grad_steps >= 1,
             "v_num_grad_steps must be a positive integer")
        for name in ("v_lr", "clamp_norm_factor", "mom2_update_weight"):
            need(getattr(self, name) > 0, f"{name} must be positive, got {getattr(self, name)}")
        for name in ("v_weight_decay", "kl_factor"):
            need(getattr(self, name) >= 0, f"{name} must be >= 0, got {getattr(self, name)}")
        need(self.stats_tokens >= 1, "stats_tokens must be positive")
        need(self.stats_dtype in key_stats.DTYPES, f"stats_dtype must be one of {', '.join(key_stats.DTYPES)}")
        need(isinstance(self.target_batch_size, int) and self.target_batch_size >= 1,
             "target_batch_size must be a positive integer")

    def stats_request(self) -> StatsRequest | None:
        if not self.mom2_adjustment:
            return None
        return StatsRequest(tuple(self.layers), self.stats_corpus, self.stats_tokens, self.stats_dtype)


def fact_positions(model, texts: list[str], subjects: list[str], fact_token: str) -> list[int]:
    return [keys.lookup_position(model, t, s, fact_token) for t, s in zip(texts, subjects)]


@torch.no_grad()
def residual_at(model, texts: list[str], positions: list[int], layer: int) -> Float[torch.Tensor, "n d_model"]:
    """The residual output of block `layer` at `positions[i]` of `texts[i]`."""
    ids, mask = tokens.batch(model, [tokens.encode(model, t) for t in texts])
    resid = control.run(model, ids, stop_at=layer + 1, mask=mask)
    rows = torch.arange(len(texts), device=resid.device)
    return resid[rows, torch.tensor(positions, device=resid.device)].float()
KEY_ROWS = 256  # texts per forward pass when reading keys


def layer_keys(model, requests: list[EditRequest], templates: list[str], layer: int, fact_token: str):
    """K [d_mlp, N]: per request, the mean over context types of the mean key within each type.

    Type 1 is the plain prompt ("{}"), type 2 the generated contexts. The texts of all
    requests are read in shared forward passes of up to KEY_ROWS texts.
    """
    return keys_and_plain_values(model, requests, templates, layer, fact_token)[0]


def keys_and_plain_values(model, requests: list[EditRequest], templates: list[str], layer: int, fact_token: str
                          ) -> tuple[Float[torch.Tensor, "d_mlp n"], Float[torch.Tensor, "n d_model"]]:
    """`layer_keys`, and the MLP value at the fact token of each plain prompt, read in the same passes."""
    generated = [t for t in templates if t != "{}"]
    per = 1 + len(generated)
    texts = [x for r in requests for x in [r.text] + [t.format(r.prompt).format(r.subject) for t in generated]]
    subjects = [r.subject for r in requests for _ in range(per)]
    pos = fact_positions(model, texts, subjects, fact_token)
    read = [keys.keys_and_values(model, texts[i : i + KEY_ROWS], pos[i : i + KEY_ROWS], layer)
            for i in range(0, len(texts), KEY_ROWS)]
    k, v = torch.cat([r[0] for r in read]), torch.cat([r[1] for r in read])
    out = [k[i * per] if not generated else 0.5 * k[i * per] + 0.5 * k[i * per + 1 : (i + 1) * per].mean(0)
           for i in range(len(requests))]
    return torch.stack(out, dim=1), v[::per]


def compute_targets(model, requests, templates, hp: HParams, progress: bool = True):
    """Z [d_model, N] at the last layer of R, and per-request optimisation logs.

    With `batch_targets` the requests' targets are optimised `target_batch_size` at a time
    (`target_batch.optimise_many`); otherwise one after another.
    """
    z_layer = max(hp.layers)
    hook = arch.hook_resid(z_layer)
    options = dict(v_num_grad_steps=hp.v_num_grad_steps, v_lr=hp.v_lr, v_weight_decay=hp.v_weight_decay,
                   clamp_norm_factor=hp.clamp_norm_factor, kl_factor=hp.kl_factor)
    batches = [target_vector.build_batch(model, r.prompt, r.subject, r.target_new, templates, hp.fact_token)
               for r in requests]
    size = hp.target_batch_size if hp.batch_targets else 1
    results = []
    bar = tqdm(total=len(requests), desc="memit targets", disable=not progress, leave=False)
    for start in range(0, len(batches), size):
        torch.manual_seed(hp.seed)
        chunk = batches[start : start + size]
        if hp.batch_targets:
            results += target_batch.optimise_many(model, chunk, hook, z_layer, **options)
        else:
            results.append(target_vector.optimise(model, chunk[0], hook, z_layer, **options))
        bar.update(len(chunk))
    bar.close()
    zs = torch.stack([r.target for r in results], dim=1)
    return zs, [{**r.losses[-1], "steps": len(r.losses)} if r.losses else {} for r in results]


def second_moments(model, hp: HParams, progress: bool = True) -> dict[int, torch.Tensor]:
    """C₀ at each layer of R (float64), every layer's from one pass over the corpus (cached); identity without
    `mom2_adjustment`. Made before any edit: an applied edit would change the later layers' keys."""
    layers = check_layers(model, hp.layers)
    if not hp.mom2_adjustment:
        return {l: torch.eye(int(model.cfg.d_mlp), dtype=torch.float64) for l in layers}
    stats = key_stats.for_hparams(model, hp, progress)
    return {l: stats[l].cov.to(torch.float64) for l in layers}


def compute_edit(model, requests, hparams: HParams, progress: bool = True, templates=None, **options) -> EditResult:
    """Edit all `requests` at once over `hparams.layers`; the weights are left as found."""
    if hparams.layers is not None:
        check_layers(model, hparams.layers)

    def compute(requests: list[EditRequest]) -> Computed:
        check_no_conflicts(requests)
        return _compute(model, requests, hparams, templates, progress)

    return edit(NAME, model, requests, hparams, compute, options)


def _compute(model, requests: list[EditRequest], hparams: HParams, templates, progress: bool) -> Computed:
    check_layers(model, hparams.layers)
    timings = {}
    if templates is None:
        templates = ctx.context_templates(model, hparams.context_template_lengths, seed=hparams.seed)
    templates = ctx.check(templates)
    update = covariance_update(model, hparams, progress)  # C₀ first, before this edit changes any layer
    t = time.perf_counter()
    zs, z_logs = compute_targets(model, requests, templates, hparams, progress)
    timings["targets"] = time.perf_counter() - t
    t = time.perf_counter()
    deltas, norms, _ = spread(model, requests, templates, zs, hparams, update, progress=progress)
    timings["layers"] = time.perf_counter() - t
    return Computed(deltas, {"templates": templates, "target_losses": z_logs, "layer_norms": norms}, timings)


def covariance_update(model, hparams, progress: bool = False):
    """MEMIT's `update` for `spread`: ΔWᵀ = (λ C₀ + K Kᵀ)⁻¹ K Rᵀ, C₀ the layer's key second moment.

    Every layer's C₀ is read (or made) here, before `spread` applies the first layer's delta."""
    covs = second_moments(model, hparams, progress)

    def update(layer: int, k: torch.Tensor, resid: torch.Tensor) -> torch.Tensor:
        cov = covs[layer].to(k.device)
        adj_k = torch.linalg.solve(hparams.mom2_update_weight * cov + k @ k.T, k)  # [d_mlp, N]
        return (resid @ adj_k.T).T

    return update


def spread(model, requests: list[EditRequest], templates: list[str], zs: Float[torch.Tensor, "d_model n"], hparams,
           update, after=None, progress: bool = False) -> tuple[list[WeightDelta], list[dict], object]:
    """Write the targets `zs` into `hparams.layers`, lowest layer first, and leave the model as it was.

    At layer i of L the residual (zs − the current output at the last layer) / (L − i) is
    handed to `update(layer, keys [d_mlp, N], residual [d_model, N])`, which returns ΔWᵀ
    [d_mlp, d_model] (float64); the delta is applied before the next layer reads its keys.
    Where the layer's MLP output passes a norm first, the residual handed on is the value
    change that gives it after that norm (`post_norm.value_change`).
    `after()`, if given, runs with every delta applied. Returns the deltas, each layer's
    residual and update norms, and what `after` returned.
    """
    layers = check_layers(model, hparams.layers)
    plain = [r.text for r in requests]
    plain_pos = fact_positions(model, plain, [r.subject for r in requests], hparams.fact_token)
    deltas: list[WeightDelta] = []
    norms = []
    try:
        for i, layer in enumerate(tqdm(layers, desc="layers", disable=not progress, leave=False)):
            k, values = keys_and_plain_values(model, requests, templates, layer, hparams.fact_token)
            k = k.double()  # [d_mlp, N]
            cur = residual_at(model, plain, plain_pos, layers[-1]).T.double()  # [d_model, N]
            resid = (zs.double() - cur) / (len(layers) - i)
            norm = arch.mlp_post_norm(model, layer)
            if norm is not None:  # the value that gives this residual after the norm (`post_norm`)
                resid = post_norm.value_change(norm, values, resid.T).T
            upd = update(layer, k, resid)  # [d_mlp, d_model]
            w = arch.mlp_out_weight(model, layer)
            delta = WeightDelta(arch.mlp_out_name(model, layer), arch.to_storage(model, upd.to(w.dtype), layer))
            delta.apply(model)  # the next layer's keys see this layer's edit
            deltas.append(delta)
            norms.append({"layer": layer, "resid_norm": float(resid.norm()), "update_norm": float(upd.norm())})
        extra = after() if after is not None else None
    finally:
        deltas_mod.revert(model, [d for d in deltas if d.applied])
    return [WeightDelta(d.name, d.delta) for d in deltas], norms, extra


EDITOR = Editor(NAME, HParams, compute_edit, inputs=("templates",))
