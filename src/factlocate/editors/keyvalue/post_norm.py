"""Through an MLP post-norm: the value change that moves the normalised output by a wanted residual.

MEMIT (and AlphaEdit, which shares its `spread`) asks each edited layer's MLP to add R to the
residual stream, and writes R into the MLP's output matrix as a change of its value v. Where the
value passes a norm before joining the residual (Gemma's post-feedforward RMSNorm,
y = w ⊙ v / rms(v)), a change of v does not add to the residual one for one: only v's direction
counts, and each channel of y is scaled by w. Written as is, R overshoots by about w / rms(v),
and the later layers of the range chase a residual that never closes.

So the wanted output y* = y + R is met as closely as the norm allows:

    u = argmin |w ⊙ u − y*|  subject to rms(u) = 1,  i.e.  u_j = w_j y*_j / (w_j² + μ)

with μ ≥ −min_j w_j² found by bisection (rms(u) falls as μ grows). The value target
v* = rms(v) · u keeps the value's size, and v* − v stands in for R. Where y* is reachable,
norm(v*) = y* (up to the norm's epsilon). The per-channel scale w is read off the norm itself,
as norm(1), so any RMS-type norm works without knowing its parametrisation.
"""
from __future__ import annotations

import torch
from jaxtyping import Float

BISECTION_STEPS = 200


def _unit_rms_fit(w: Float[torch.Tensor, "d"], target: Float[torch.Tensor, "n d"]) -> Float[torch.Tensor, "n d"]:
    """Per row, the u with rms(u) = 1 that minimises |w ⊙ u − target| (float64)."""
    wy, w2 = w * target, w * w
    lo = torch.full_like(target[:, :1], float(-w2.min()))
    hi = (wy.pow(2).mean(-1, keepdim=True).sqrt() + w2.max() + 1.0).clamp_min(lo + 1.0)
    for _ in range(BISECTION_STEPS):  # mean(u²) is decreasing in μ on (lo, ∞)
        mid = (lo + hi) / 2
        too_big = (wy / (w2 + mid)).pow(2).mean(-1, keepdim=True) > 1
        lo, hi = torch.where(too_big, mid, lo), torch.where(too_big, hi, mid)
    u = wy / (w2 + hi)
    return u / u.pow(2).mean(-1, keepdim=True).sqrt()  # exact unit rms, also in the degenerate case


@torch.no_grad()
def value_change(norm: torch.nn.Module, values: Float[torch.Tensor, "n d"],
                 resid: Float[torch.Tensor, "n d"]) -> Float[torch.Tensor, "n d"]:
    """The change of each value row that moves norm(value) by `resid` as far as the norm allows (float64)."""
    dtype = next(norm.parameters()).dtype
    v = values.to(dtype)
    w = norm(torch.ones_like(v[:1])).double()[0]  # rms(1) = 1, so this is the per-channel scale
    u = _unit_rms_fit(w, norm(v).double() + resid.double())
    v = v.double()
    return v.pow(2).mean(-1, keepdim=True).sqrt() * u - v
