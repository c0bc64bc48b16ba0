"""Attribution patching (AtP): every site's effect from one clean pass and one forward plus backward pass.

Restoring a site writes clean activations a_clean over the corrupted run's a_s (hidden: the
residual after block l at token t; mlp/attn: the module outputs of the window's layers at t).
To first order (Nanda 2023; Kramár et al. 2024, "AtP*") the change of the readout m is

    Δm ≈ mean_s  Σ_a (a_clean − a_s) · ∂m_s/∂a        (gradients on corrupted row s)

so one clean pass, and one forward and backward pass over the S corrupted rows, estimate every
cell of every grid: the estimated score is the corrupted score plus Δm. The corrupted rows use
the exact engine's draws (`RandomState(seed)`, first draw), so the two grids compare cell by
cell. Gradients are taken with respect to the activations themselves: the embeddings of the
corrupted rows are made to require grad, and every captured activation keeps its gradient.

GradDrop (AtP*'s remedy for cancellation): with `graddrop`, each site also gets
1/(L-1) Σ_l |Δm_l|, where Δm_l is the estimate with the gradient through block l's attention
and MLP outputs set to zero; `verify` ranks sites by the larger of |Δm| and that value.
Not implemented: AtP*'s QK fix (recomputing the attention softmax that reads a patched
residual); `atp+verify` runs the top sites exactly instead. Severed grids are not estimated.
"""
from __future__ import annotations

import numpy as np
import torch

from factlocate import arch
from factlocate.errors import FactlocateError
from factlocate.forward import Capture, control
from factlocate.tracing.core import GridSpec, Prepared, window_layers


class _KeepGrad:
    """Hooks that keep each activation (with its gradient) as it passes, under the name they were hooked at."""

    def __init__(self):
        self.values: dict[str, torch.Tensor] = {}

    def at(self, name: str):
        def hook(act: torch.Tensor, hook=None) -> torch.Tensor:
            act.retain_grad()
            self.values[name] = act
            return act
        return hook


def _leaf(x: torch.Tensor, hook=None) -> torch.Tensor:
    return x.detach().requires_grad_(True)


def _names(model) -> list[str]:
    n = arch.n_layers(model)
    return [arch.hook_for_kind(kind, l) for kind in ("hidden", "mlp", "attn") for l in range(n)]


def _contributions(clean: Capture, kept: dict[str, torch.Tensor], names: list[str]) -> dict[str, np.ndarray]:
    """mean_s (a_clean − a_s) · ∂m_s/∂a at every position, per hook: {name: [pos]}."""
    out = {}
    for name in names:
        a = kept[name]
        if a.grad is None:
            out[name] = np.zeros(a.shape[1])
            continue
        diff = clean[name][0].to(a.dtype) - a.detach()
        out[name] = (diff * a.grad).sum(-1).mean(0).float().cpu().numpy()
    return out


def _grid(contrib: dict[str, np.ndarray], grid: GridSpec, positions: list[int], n_layers: int) -> np.ndarray:
    """Δm per (position, layer) of one grid: a window sums its layers."""
    out = np.zeros((len(positions), n_layers))
    for l in range(n_layers):
        layers = [l] if grid.kind == "hidden" else window_layers(l, grid.window, n_layers)
        total = sum(contrib[arch.hook_for_kind(grid.kind, j)] for j in layers)
        out[:, l] = total[positions]
    return out


def estimate(model, prep: Prepared, grids: list[GridSpec], positions: list[int],
             graddrop: bool = False) -> tuple[list[np.ndarray], float, list[np.ndarray] | None]:
    """Estimated score grids, the corrupted score, and (with `graddrop`) GradDrop magnitudes per grid."""
    if any(g.sever for g in grids):
        raise FactlocateError("attribution patching estimates unsevered grids: use --method exact for --sever")
    S, n_layers = prep.samples, prep.n_layers
    names = _names(model)
    clean = Capture(names, clone=True)
    with torch.no_grad():
        control.run(model, prep.ids_tensor(1), hooks=clean.hooks)
    corrupt = prep.corruption.hook(prep, np.random.RandomState(prep.seed), rows=S)
    kept = _KeepGrad()
    with torch.enable_grad():
        hooks = [corrupt, (arch.HOOK_EMBED, _leaf)] + [(n, kept.at(n)) for n in names]
        resid = control.run(model, prep.ids_tensor(S), hooks=hooks)
        m = prep.readout(control.unembed(model, resid[:, -1]), torch.arange(S))
        low = prep.readout.mean(control.unembed(model, resid[:, -1].detach()), torch.arange(S))
        m.sum().backward(retain_graph=graddrop)
        contrib = _contributions(clean, kept.values, names)
        drops = _graddrop(m, clean, kept.values, names, n_layers) if graddrop else None
    scores = [low + _grid(contrib, g, positions, n_layers) for g in grids]
    magnitudes = None
    if drops is not None:
        magnitudes = [np.mean([np.abs(_grid(d, g, positions, n_layers)) for d in drops], axis=0) * n_layers
                      / max(1, n_layers - 1) for g in grids]
    return scores, low, magnitudes


def _graddrop(m: torch.Tensor, clean: Capture, kept: dict, names: list[str], n_layers: int) -> list[dict]:
    """One set of contributions per layer l, with the gradient through block l's attention and MLP outputs zeroed."""
    out = []
    for l in range(n_layers):
        for a in kept.values():
            a.grad = None
        handles = [kept[arch.hook_for_kind(k, l)].register_hook(torch.zeros_like) for k in ("mlp", "attn")]
        m.sum().backward(retain_graph=True)
        for h in handles:
            h.remove()
        out.append(_contributions(clean, kept, names))
    return out
