"""Knowledge Neurons: integrated gradients, neuron selection and the embedding edit, on a tiny model."""
from __future__ import annotations

import pytest
import torch

from factlocate import arch, tokens
from factlocate.editors import get
from factlocate.editors.neuron_attention import kn
from factlocate.editors.neuron_attention import integrated_gradients as ig
from factlocate.editors.base import EditRequest
from factlocate.errors import FactlocateError

REQ = EditRequest(prompt="{} is located in", subject="Vinson Massif", target_new="Paris", target_true="Antarctica")


def test_registry():
    assert get("kn") is kn.EDITOR


def test_integrated_gradients_completeness(tiny_gpt2):
    """With many steps, a layer's attributions sum to p(actual) - p(neurons zeroed) (IG completeness)."""
    model, layer = tiny_gpt2, 2
    ids = tokens.encode(model, REQ.text)
    target = tokens.encode_target(model, REQ.target_true)[0]
    scores = ig.neuron_attributions(model, ids, target, steps=64, batch_size=64, layers=[layer])
    x = tokens.to_tensor(model, ids)

    def zero_last(value, hook):
        value = value.clone()
        value[:, -1] = 0
        return value

    with torch.no_grad():
        p_full = model(x)[0, -1].softmax(-1)[target]
        p_zero = model.run_with_hooks(x, fwd_hooks=[(arch.hook_mlp_key(layer), zero_last)])[0, -1].softmax(-1)[target]
    assert float(scores.sum()) == pytest.approx(float(p_full - p_zero), abs=0.05 * abs(float(p_full - p_zero)) + 1e-6)


def test_coarse_and_refine():
    scores = torch.tensor([[0.0, 1.0, 0.1], [0.5, 0.19, 0.0]])
    assert ig.coarse_neurons(scores, 0.2) == [(0, 1), (1, 0)]
    assert ig.refine([[(0, 1)], [(0, 1), (1, 0)], [(1, 2)]], p=0.4) == [(0, 1)]


def test_kn_edit_rows_and_revert(tiny_gpt2):
    model = tiny_gpt2
    before = {n: p.detach().clone() for n, p in arch.hf_model(model).named_parameters()}
    result = kn.compute_edit(model, [REQ], kn.HParams(steps=4, batch_size=4), progress=False)
    for n, p in arch.hf_model(model).named_parameters():
        assert torch.equal(p, before[n]), n
    neurons = result.extra["neurons"][0]
    assert neurons, "the adaptive threshold keeps at least the top neuron"
    embed = arch.hf_model(model).get_input_embeddings().weight
    ids = tokens.to_tensor(model, tokens.encode(model, REQ.text))
    with torch.no_grad():
        top1 = int(model(ids)[0, -1].argmax())
    new = tokens.encode_target(model, REQ.target_new)[0]
    change = 2 * (embed[new] - embed[top1])
    by_layer = {}
    for layer, i in neurons:
        by_layer.setdefault(layer, set()).add(i)
    assert [d.name for d in result.deltas] == [arch.mlp_out_name(model, l) for l in sorted(by_layer)]
    for d, layer in zip(result.deltas, sorted(by_layer)):
        rows = d.delta  # GPT-2 stores the output matrix [d_mlp, d_model]
        touched = {int(i) for i in rows.abs().sum(1).nonzero().flatten()}
        assert touched == by_layer[layer]
        for i in touched:
            torch.testing.assert_close(rows[i], change)
    with result.applied(model):
        pass
    for n, p in arch.hf_model(model).named_parameters():
        assert torch.equal(p, before[n]), n
    # on this tiny model the embedding edit moves p(new) up (on real models it mostly does not, as in the paper)
    assert result.probs_after[0]["new"] > result.probs_before[0]["new"]


def test_kn_hparams_validation(tiny_gpt2):
    for bad in ({"steps": 0}, {"adaptive_threshold": 0.0}, {"adaptive_threshold": 1.5}, {"p": 2.0}, {"layers": []}):
        with pytest.raises(FactlocateError):
            kn.HParams(**bad)
    with pytest.raises(FactlocateError, match="out of range"):
        kn.compute_edit(tiny_gpt2, [REQ], kn.HParams(layers=[7]), progress=False)
    with pytest.raises(FactlocateError, match="empty"):
        kn.compute_edit(tiny_gpt2, [], kn.HParams(), progress=False)


@pytest.mark.parametrize("steps,batch_size", [(6, 6), (5, 2)])
def test_last_position_runs_equal_whole_prompts(tiny_model, steps, batch_size):
    """Running only the last position from each layer up (earlier positions from a KV cache) gives the
    whole-prompt scores on every tiny architecture, batches split or not."""
    ids = tokens.encode(tiny_model, REQ.text)
    target = tokens.encode_target(tiny_model, REQ.target_true)[0]
    assert ig.last_position_verified(tiny_model)
    fast = ig.neuron_attributions(tiny_model, ids, target, steps, batch_size, reuse=True)
    whole = ig.neuron_attributions(tiny_model, ids, target, steps, batch_size, reuse=False)
    assert fast.shape == whole.shape == (arch.n_layers(tiny_model), whole.shape[1])
    torch.testing.assert_close(fast, whole, atol=1e-6 * float(whole.abs().max()), rtol=1e-4)
    assert ig.coarse_neurons(fast, 0.1) == ig.coarse_neurons(whole, 0.1)


def test_a_broken_cache_is_refused_and_whole_prompts_run(tiny_gpt2, monkeypatch):
    from factlocate.forward import kv
    from factlocate.identity import state

    ids = tokens.encode(tiny_gpt2, REQ.text)
    target = tokens.encode_target(tiny_gpt2, REQ.target_true)[0]
    real = kv.from_layers

    def shifted(model, per_layer):  # keys of the wrong positions
        return real(model, [(k.roll(1, dims=-2), v) for k, v in per_layer])

    state(tiny_gpt2).checks.pop("integrated gradients", None)
    monkeypatch.setattr(kv, "from_layers", shifted)
    try:
        checked = ig.neuron_attributions(tiny_gpt2, ids, target, 4, 4)
        assert state(tiny_gpt2).checks["integrated gradients"] is False
        assert torch.equal(checked, ig.neuron_attributions(tiny_gpt2, ids, target, 4, 4, reuse=False))
    finally:
        state(tiny_gpt2).checks.pop("integrated gradients", None)
