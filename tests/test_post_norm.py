"""MEMIT through an MLP post-norm (Gemma): the value change that gives the wanted normalised output."""
from __future__ import annotations

import torch
from transformers.models.gemma3.modeling_gemma3 import Gemma3RMSNorm

from factlocate import arch
from factlocate import deltas as deltas_mod
from factlocate.editors.base import EditRequest
from factlocate.editors.keyvalue import keys, memit, post_norm

REQ = EditRequest(prompt="{} is located in", subject="Vinson Massif", target_new="Paris", target_true="Antarctica")


def _norm(d: int, scale: float, seed: int = 0) -> Gemma3RMSNorm:
    g = torch.Generator().manual_seed(seed)
    norm = Gemma3RMSNorm(d, eps=1e-12)
    with torch.no_grad():  # Gemma's post-norms scale channels by up to hundreds, a few by ~0
        norm.weight.copy_(scale * torch.randn(d, generator=g))
    return norm


def test_value_change_meets_a_reachable_output():
    norm = _norm(16, 50.0)
    g = torch.Generator().manual_seed(1)
    v, v2 = torch.randn(5, 16, generator=g), 3 * torch.randn(5, 16, generator=g)
    with torch.no_grad():
        dv = post_norm.value_change(norm, v, norm(v2) - norm(v))
        got = norm((v.double() + dv).float())
        want = norm(v2)
    assert torch.allclose(got, want, rtol=1e-4, atol=1e-3 * float(want.abs().max()))
    assert torch.allclose((v.double() + dv).pow(2).mean(-1), v.double().pow(2).mean(-1))  # the value keeps its size


def test_value_change_comes_closer_to_an_unreachable_output():
    norm = _norm(16, 50.0)
    g = torch.Generator().manual_seed(2)
    v, resid = torch.randn(5, 16, generator=g), 500 * torch.randn(5, 16, generator=g)
    with torch.no_grad():
        target = norm(v) + resid
        dv = post_norm.value_change(norm, v, resid)
        got = norm((v.double() + dv).float())
    assert torch.isfinite(dv).all()
    assert ((got - target).norm(dim=-1) < (norm(v) - target).norm(dim=-1)).all()


def test_memit_writes_the_residual_through_gemma_post_norm(tiny_dirs):
    from factlocate import load_model

    model = load_model(tiny_dirs["gemma3"])  # its own copy: the norm's weights are changed below
    layer, req = 2, REQ
    norm = arch.mlp_post_norm(model, layer)
    assert norm is not None and arch.mlp_post_norm(load_model(tiny_dirs["llama"]), layer) is None
    with torch.no_grad():
        norm.weight.copy_(_norm(norm.weight.numel(), 50.0).weight)
    hp = memit.HParams(layers=[layer], mom2_adjustment=False, mom2_update_weight=1e-9)
    pos = memit.fact_positions(model, [req.text], [req.subject], hp.fact_token)
    h = memit.residual_at(model, [req.text], pos, layer)[0].double()
    _, v = keys.keys_and_values(model, [req.text], pos, layer)
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():  # a residual the norm can give: the output of a nearby value
        nearby = v + 0.5 * v.norm() / v.numel() ** 0.5 * torch.randn(v.shape, generator=g)
        step = norm(nearby).double() - norm(v).double()
    z = (h + step[0]).unsqueeze(1)
    deltas, _, _ = memit.spread(model, [req], ["{}"], z, hp, memit.covariance_update(model, hp))
    with deltas_mod.applied(model, deltas):
        after = memit.residual_at(model, [req.text], pos, layer)[0].double()
    assert (after - z[:, 0]).norm() < 1e-3 * step.norm()

