"""MEND's gradient transform (Mitchell et al. 2021), following `algs/mend.py` and `nn.py` of the reference.

For an edited matrix M [d_in, d_out] and one edit example, the fine-tuning gradient is
∇M = Σ_i u_iᵀ δ_i. MEND maps each token's pair (u_i, δ_i) to (ũ_i, δ̃_i) and edits

    ΔM = −α_p Σ_i ũ_iᵀ δ̃_i          (α_p: a learned step size per matrix, initially `edit_lr`)

The map g (`GradientTransform`) is shared by the matrices of one shape. It normalises u and δ by running
means and standard deviations (updated while training), concatenates them (`combine`), and runs an MLP of
`n_hidden` hidden layers (`IDMLP`): each layer is low rank (`rank`), initialised to the identity (its
first factor is zero, and the input is added back), with a ReLU on the hidden layers. Each matrix sharing
the transform has its own scale and shift on every layer's output (the reference's `mode` embeddings).
"""
from __future__ import annotations

import torch
import torch.nn as nn


class LowRankLayer(nn.Module):
    """x + act((a b xᵀ)ᵀ + bias) with a [d, r] zero-initialised, b [r, d] random, per-mode scale and shift."""

    def __init__(self, dim: int, rank: int, modes: int, relu: bool):
        super().__init__()
        r = min(rank, dim)
        self.a = nn.Parameter(torch.zeros(dim, r))
        self.b = nn.Parameter(torch.randn(r, dim))
        self.bias = nn.Parameter(torch.zeros(dim))
        self.scale = nn.Parameter(torch.ones(modes, dim))
        self.shift = nn.Parameter(torch.zeros(modes, dim))
        self.relu = relu

    def forward(self, x: torch.Tensor, mode: int) -> torch.Tensor:
        pre = (x @ self.b.T) @ self.a.T + self.bias
        pre = pre * self.scale[mode] + self.shift[mode]
        return x + (pre.clamp(min=0) if self.relu else pre)


class GradientTransform(nn.Module):
    """g for the matrices of one shape: normalise (u, δ), an identity-initialised low-rank MLP, split."""

    def __init__(self, d_in: int, d_out: int, rank: int, n_hidden: int, modes: int):
        super().__init__()
        self.d_in, self.d_out = d_in, d_out
        dim = d_in + d_out
        self.layers = nn.ModuleList([LowRankLayer(dim, rank, modes, relu=i < n_hidden) for i in range(n_hidden + 1)])
        for name, d in (("u", d_in), ("d", d_out)):
            self.register_buffer(f"{name}_mean", torch.zeros(d))
            self.register_buffer(f"{name}_m2", torch.zeros(d))
        self.register_buffer("count", torch.zeros((), dtype=torch.float64))

    @torch.no_grad()
    def observe(self, u: torch.Tensor, d: torch.Tensor) -> None:
        """Welford updates of the running mean and variance, one token at a time (as the reference)."""
        for x_u, x_d in zip(u, d):
            self.count += 1
            k = float(self.count)
            for name, x in (("u", x_u), ("d", x_d)):
                mean, m2 = getattr(self, f"{name}_mean"), getattr(self, f"{name}_m2")
                new = mean + (x - mean) / k
                m2 += (x - mean) * (x - new)
                mean.copy_(new)

    def _std(self, name: str) -> torch.Tensor:
        k = max(float(self.count) - 1, 1.0)
        return (getattr(self, f"{name}_m2") / k).sqrt()

    def forward(self, u: torch.Tensor, d: torch.Tensor, mode: int) -> tuple[torch.Tensor, torch.Tensor]:
        u_in = (u - self.u_mean) / (self._std("u") + 1e-7)
        d_in = (d - self.d_mean) / (self._std("d") + 1e-7)
        x = torch.cat([u_in, d_in], dim=-1)
        for layer in self.layers:
            x = layer(x, mode)
        return x[:, : self.d_in], x[:, self.d_in :]


class MendNet(nn.Module):
    """The transforms (one per shape) and the per-matrix step sizes α_p."""

    def __init__(self, inners, rank: int = 1920, n_hidden: int = 1, edit_lr: float = 1e-4):
        super().__init__()
        self.names = [i.name for i in inners]
        shapes = {}
        for i in inners:
            shapes.setdefault((i.d_in, i.d_out), []).append(i.name)
        self.shape_of = {n: f"{a}x{b}" for (a, b), names in shapes.items() for n in names}
        self.mode_of = {n: names.index(n) for names in shapes.values() for n in names}
        self.transforms = nn.ModuleDict({f"{a}x{b}": GradientTransform(a, b, rank, n_hidden, len(names))
                                         for (a, b), names in shapes.items()})
        self.edit_lrs = nn.Parameter(torch.full((len(inners),), float(edit_lr)))

    def forward(self, factors: dict[str, tuple]) -> dict[str, torch.Tensor]:
        """{name: ΔM [d_in, d_out]} from each matrix's (u, δ); tokens whose u or δ is all zero are left out."""
        out = {}
        for k, name in enumerate(self.names):
            u, d = factors[name]
            u, d = u.float(), d.float()
            keep = (u != 0).any(-1) & (d != 0).any(-1)
            u, d = u[keep], d[keep]
            g = self.transforms[self.shape_of[name]]
            if self.training:
                g.observe(u, d)
            if float(g.count) < 2:
                raise RuntimeError("MEND's normalisation needs at least two observed tokens: train it first")
            u_t, d_t = g(u, d, self.mode_of[name])
            out[name] = -self.edit_lrs[k] * (u_t.T @ d_t)
        return out
