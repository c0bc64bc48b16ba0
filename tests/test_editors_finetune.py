"""FT, FT+L, FT-W and AttnEdit on tiny random models: they edit, keep their constraint, and revert exactly."""
from __future__ import annotations

import pytest
import torch

from factlocate import arch, scoring
from factlocate.editors import get
from factlocate.editors.finetuning import finetune, ft, ft_l, ft_w
from factlocate.editors.neuron_attention import attn_edit
from factlocate.editors.base import EditRequest
from factlocate.errors import FactlocateError

REQ = EditRequest(prompt="{} is located in", subject="Vinson Massif", target_new="Paris", target_true="Antarctica")
FAST = dict(lr=2e-2, num_steps=3)


def snapshot(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in arch.hf_model(model).named_parameters()}


def assert_same(model, before):
    after = dict(arch.hf_model(model).named_parameters())
    for n, t in before.items():
        assert torch.equal(after[n], t), n


def check_edit_and_revert(model, module, hp):
    before = snapshot(model)
    result = module.compute_edit(model, [REQ], hp, progress=False)
    assert_same(model, before)  # compute_edit leaves the weights as found
    assert result.probs_after[0]["new"] > result.probs_before[0]["new"]
    with result.applied(model):
        assert scoring.target_prob(model, REQ.text, REQ.target_new) == pytest.approx(result.probs_after[0]["new"])
    assert_same(model, before)  # bit-identical after revert
    return result


def test_registry_names():
    assert get("ft") is ft.EDITOR and get("ft-l") is ft_l.EDITOR and get("ft-w") is ft_w.EDITOR
    assert get("attn-edit") is attn_edit.EDITOR


def test_ft_edits_and_reverts(tiny_model):
    result = check_edit_and_revert(tiny_model, ft, ft.HParams(layer=1, **FAST))
    assert [d.name for d in result.deltas] == finetune.mlp_out_names(tiny_model, 1)


def test_ft_l_stays_within_eps(tiny_gpt2):
    eps = 2e-3
    result = check_edit_and_revert(tiny_gpt2, ft_l, ft_l.HParams(layer=1, norm_constraint=eps, **FAST))
    for d in result.deltas:
        assert d.delta.abs().max() <= eps * (1 + 1e-5)
        assert d.delta.abs().max() > eps / 2  # the clamp is binding, not idle


def test_attn_edit_stays_within_eps(tiny_model):
    eps = 5e-3
    result = check_edit_and_revert(tiny_model, attn_edit, attn_edit.HParams(layer=2, norm_constraint=eps, **FAST))
    assert [d.name for d in result.deltas] == arch.attn_qkv_names(tiny_model, 2)
    for d in result.deltas:
        assert d.delta.abs().max() <= eps * (1 + 1e-5)
    # every Q/K/V parameter moved (GPT-2's fused c_attn gets its gradient through the bridge's split views)
    assert all(d.delta.abs().max() > 0 for d in result.deltas)


def test_ft_w_tunes_the_block_and_its_decay_is_active(tiny_gpt2):
    free = ft_w.compute_edit(tiny_gpt2, [REQ], ft_w.HParams(layer=1, weight_decay=0.0, **FAST), progress=False)
    decayed = ft_w.compute_edit(tiny_gpt2, [REQ], ft_w.HParams(layer=1, weight_decay=1.0, **FAST), progress=False)
    assert {d.name for d in free.deltas} == set(arch.block_param_names(tiny_gpt2, 1))
    norm = lambda r: sum(float(d.delta.pow(2).sum()) for d in r.deltas) ** 0.5  # noqa: E731
    assert norm(decayed) < 0.9 * norm(free)
    assert decayed.extra["penalty"][-1] > 0 and free.extra["penalty"][-1] == 0
    assert decayed.probs_after[0]["new"] > decayed.probs_before[0]["new"]


def test_loss_functions(tiny_gpt2):
    multi = EditRequest(prompt="{} is located in", subject="Vinson Massif", target_new="Antarctica Paris")
    assert len(scoring.tokens.encode_target(tiny_gpt2, multi.target_new)) > 1
    with torch.no_grad():
        tf = finetune.teacher_forced_loss(tiny_gpt2, [multi, REQ])
        expected = scoring.target_nll(tiny_gpt2, [multi.text, REQ.text], [multi.target_new, REQ.target_new]).mean()
        assert float(tf) == pytest.approx(float(expected), rel=1e-5)
        # one-token targets: the original loss and the teacher-forced one coincide
        single = EditRequest(prompt="{} is in", subject="Paris", target_new="France")
        if len(scoring.tokens.encode_target(tiny_gpt2, "France")) == 1:
            assert float(finetune.last_position_loss(tiny_gpt2, [single])) == pytest.approx(
                float(finetune.teacher_forced_loss(tiny_gpt2, [single])), rel=1e-5
            )
        assert float(finetune.last_position_loss(tiny_gpt2, [multi])) != pytest.approx(float(tf))


def test_teacher_forced_option(tiny_gpt2):
    check_edit_and_revert(tiny_gpt2, ft, ft.HParams(layer=1, teacher_forced=True, **FAST))


@pytest.mark.parametrize(
    "cls, kwargs",
    [
        (ft_l.HParams, {"norm_constraint": 0.0}),
        (ft_l.HParams, {"norm_constraint": -1e-3}),
        (ft_l.HParams, {"norm_constraint": None}),
        (attn_edit.HParams, {"norm_constraint": 0.0}),
        (ft.HParams, {"lr": 0.0}),
        (ft.HParams, {"num_steps": 0}),
        (ft_w.HParams, {"weight_decay": -1.0}),
    ],
)
def test_bad_hparams(cls, kwargs):
    with pytest.raises(FactlocateError):
        cls(**kwargs)


def test_bad_requests_and_layers(tiny_gpt2):
    with pytest.raises(FactlocateError, match="empty"):
        ft.compute_edit(tiny_gpt2, [], ft.HParams(layer=1), progress=False)
    for module in (ft, ft_l, ft_w, attn_edit):
        with pytest.raises(FactlocateError, match="out of range"):
            module.compute_edit(tiny_gpt2, [REQ], module.HParams(layer=4), progress=False)


def test_configs_load():
    hp = ft_l.HParams.load("gpt-j-6b")
    assert hp.layer == 0 and hp.norm_constraint == 5e-5
    assert ft.HParams.load("gpt2-xl").layer == 1
    assert ft_w.HParams.load("gpt-j-6b").weight_decay == 5e-4
    assert attn_edit.HParams.load("gpt2-xl").layer == 33
    for spec in ("smollm2-135m", "gemma-3-270m"):
        for name, module in (("ft", ft), ("ft-l", ft_l), ("ft-w", ft_w), ("attn-edit", attn_edit)):
            module.HParams.load(spec)
