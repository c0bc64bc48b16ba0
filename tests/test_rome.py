"""ROME on tiny random models: efficacy, rank one, exact revert, determinism, fact tokens, errors."""
from __future__ import annotations

import pytest
import torch

from factlocate import arch, tokens
from factlocate.editors.keyvalue import keys, rome, target_vector
from factlocate.editors.base import EditRequest
from factlocate.errors import FactlocateError

TEMPLATES = ["{}", "The city. {}", "In the news today. {}"]
REQUEST = EditRequest("{} is located in the city of", "The Eiffel Tower", "Rome", target_true="Paris")


def _identity_cov(model):
    return torch.eye(int(model.cfg.d_mlp), dtype=torch.float64)


def _hp(**kw):
    base = dict(layer=1, v_num_grad_steps=20, stats_tokens=2000)
    return rome.HParams(**{**base, **kw})


@pytest.fixture(scope="module")
def gpt2_edit(tiny_gpt2):
    before = arch.mlp_out_weight(tiny_gpt2, 1).detach().clone()
    result = rome.compute_edit(tiny_gpt2, REQUEST, _hp(), stats=_identity_cov(tiny_gpt2), templates=TEMPLATES)
    return result, before


def test_edit_makes_new_target_win_and_leaves_weights(tiny_gpt2, gpt2_edit):
    result, before = gpt2_edit
    assert result.probs_before[0]["new"] < result.probs_before[0]["true"]
    assert result.probs_after[0]["new"] > result.probs_after[0]["true"]
    assert torch.equal(arch.mlp_out_weight(tiny_gpt2, 1), before)  # compute_edit restores the weights
    assert set(result.timings) >= {"k_bar", "v_star", "update"}
    losses = result.extra["per_request"][0]["losses"]
    assert losses[-1]["loss"] < losses[0]["loss"]


def test_delta_is_rank_one_and_revert_is_bit_exact(tiny_gpt2, gpt2_edit):
    result, before = gpt2_edit
    d = result.deltas[0].delta.double()
    s = torch.linalg.svdvals(d)
    assert s[1] < 1e-5 * s[0]
    w = arch.hf_parameter(tiny_gpt2, result.deltas[0].name)
    original = w.detach().clone()
    result.apply(tiny_gpt2)
    assert not torch.equal(w, original)
    result.revert(tiny_gpt2)
    assert torch.equal(w, original)
    with result.applied(tiny_gpt2):
        assert not torch.equal(w, original)
    assert torch.equal(w, original)


def test_update_maps_plain_key_to_target(tiny_gpt2, gpt2_edit):
    """ΔW k = v* − W k at the plain prompt, so the edited layer outputs v* there."""
    result, _ = gpt2_edit
    extra = result.extra["per_request"][0]
    text = REQUEST.text
    pos = keys.lookup_position(tiny_gpt2, text, REQUEST.subject, "subject_last")
    with result.applied(tiny_gpt2):
        _, v = keys.keys_and_values(tiny_gpt2, [text], [pos], 1)
    assert torch.allclose(v[0], extra["v_star"], atol=1e-4)


def test_same_inputs_give_same_edit(tiny_gpt2, gpt2_edit):
    result, _ = gpt2_edit
    again = rome.compute_edit(tiny_gpt2, REQUEST, _hp(), stats=_identity_cov(tiny_gpt2), templates=TEMPLATES)
    a, b = result.extra["per_request"][0], again.extra["per_request"][0]
    assert torch.equal(a["u"], b["u"]) and torch.equal(a["v_star"], b["v_star"])
    assert torch.equal(result.deltas[0].delta, again.deltas[0].delta)


@pytest.mark.parametrize("name", ["gpt2", "gptj", "llama", "gemma3"])
@pytest.mark.parametrize("where", ["mlp", "resid"])  # ROME's v* (MLP output) and MEMIT's z (residual)
def test_skipped_blocks_equal_the_plain_path(tiny_dirs, name, where):
    """The fast path runs the blocks below the edited layer once and each step from that layer up (and only the
    positions from the fact token on); the plain path runs every block on whole rows with full logits."""
    from factlocate import load_model

    model = load_model(tiny_dirs[name])
    batch = target_vector.build_batch(model, REQUEST.prompt, REQUEST.subject, "Rome", TEMPLATES)
    hook = arch.hook_mlp_value(2) if where == "mlp" else arch.hook_resid(2)
    out = {}
    for fast in (True, False):
        with torch.enable_grad():
            out[fast] = target_vector.optimise(model, batch, hook, 2, v_num_grad_steps=4, fast=fast)
    torch.testing.assert_close(out[True].v_init, out[False].v_init, atol=1e-5, rtol=0)
    torch.testing.assert_close(out[True].target, out[False].target, atol=1e-4, rtol=1e-4)
    assert len(out[True].losses) == len(out[False].losses) == 4  # the same steps


def test_sequential_requests_and_consistent_keys(tiny_model):
    reqs = [REQUEST, EditRequest("{} plays the sport of", "LeBron James", "football", target_true="basketball")]
    hp = _hp(v_num_grad_steps=3)
    res = rome.compute_edit(tiny_model, reqs, hp, stats=_identity_cov(tiny_model), templates=TEMPLATES)
    assert len(res.deltas) == 2 and len(res.probs_after) == 2
    res2 = rome.compute_edit(tiny_model, REQUEST, _hp(v_num_grad_steps=3, consistent_keys=True),
                             stats=_identity_cov(tiny_model), templates=TEMPLATES)
    extra = res2.extra["per_request"][0]
    w = arch.mlp_out_weight(tiny_model, 1).detach().float()
    dw = res2.deltas[0].delta
    dw = dw.T if arch.stored_transposed(tiny_model, 1, "mlp.out") else dw
    # with consistent keys, ΔW maps k̄ to v* − W k̄ (biases cancel)
    assert torch.allclose(extra["k_bar"] @ (w + dw) - extra["k_bar"] @ w,
                          extra["right"] * torch.dot(extra["k_bar"], extra["u"]), atol=1e-4)


def test_fact_token_positions(tiny_gpt2):
    text = "The Eiffel Tower is located in"
    start, end = tokens.subject_range(tiny_gpt2, text, "The Eiffel Tower")
    n = len(tokens.encode(tiny_gpt2, text))
    lp = lambda ft: keys.lookup_position(tiny_gpt2, text, "The Eiffel Tower", ft)  # noqa: E731
    assert (lp("subject_first"), lp("subject_last"), lp("subject_first_after_last"), lp("last")) == (
        start, end - 1, end, n - 1)
    for ft in keys.FACT_TOKENS:
        res = rome.compute_edit(tiny_gpt2, REQUEST, _hp(v_num_grad_steps=2, fact_token=ft),
                                stats=_identity_cov(tiny_gpt2), templates=TEMPLATES)
        assert res.deltas[0].delta.isfinite().all()


def test_bad_input_is_a_clear_error(tiny_gpt2):
    cov = _identity_cov(tiny_gpt2)
    with pytest.raises(FactlocateError, match="does not occur"):
        EditRequest.from_text("Rome is in", "Paris", "France")
    with pytest.raises(FactlocateError, match="does not occur"):
        keys.lookup_position(tiny_gpt2, "Rome is in", "Paris")
    with pytest.raises(FactlocateError, match="no '\\{\\}'"):
        EditRequest("Paris is in", "Paris", "France")
    with pytest.raises(FactlocateError, match="empty"):
        EditRequest("{} is in", "Paris", " ")
    with pytest.raises(FactlocateError, match="out of range"):
        rome.compute_edit(tiny_gpt2, REQUEST, _hp(layer=99), stats=cov, templates=TEMPLATES)
    with pytest.raises(FactlocateError, match="fact_token"):
        _hp(fact_token="middle")
    with pytest.raises(FactlocateError, match="exactly one"):
        rome.compute_edit(tiny_gpt2, REQUEST, _hp(), stats=cov, templates=["no braces"])
    with pytest.raises(FactlocateError, match="shape"):
        rome.compute_edit(tiny_gpt2, REQUEST, _hp(), stats=torch.eye(3), templates=TEMPLATES)
    with pytest.raises(FactlocateError, match="unknown rome hyperparameters"):
        rome.load("gemma-3-270m", {"learning_rate": 1})


def test_configs_load_with_paper_values():
    for spec, layer, clamp in [("gpt2-xl", 17, 4), ("gpt2-large", 12, 4), ("gpt2-medium", 8, 3),
                               ("EleutherAI/gpt-j-6b", 5, 4)]:
        hp = rome.load(spec)
        assert (hp.layer, hp.clamp_norm_factor, hp.v_lr, hp.kl_factor, hp.v_weight_decay) == (layer, clamp, 0.5, 0.0625, 0.5)
    for spec in ("gemma-3-270m", "smollm2-135m"):
        assert rome.load(spec).fact_token == "subject_last"
