"""MEMIT on a tiny model: a batch edit spread over exactly the layers of R, reverting exactly; the range helper."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from factlocate import arch
from factlocate.editors import get
from factlocate.editors.keyvalue import memit
from factlocate.tracing import layer_range
from factlocate.editors.base import EditRequest
from factlocate.errors import FactlocateError

REQS = [
    EditRequest(prompt="{} is located in", subject="Vinson Massif", target_new="Paris",
                target_true="Antarctica", relation_id="P30"),
    EditRequest(prompt="{} is located in the city of", subject="The Eiffel Tower", target_new="Rome",
                target_true="Paris", relation_id="P131"),
]
TEMPLATES = ["{}", "The city. {}", "In the. {}"]
FAST = dict(layers=[1, 2], v_num_grad_steps=8, mom2_update_weight=0.01, clamp_norm_factor=4.0, stats_tokens=2000)


@pytest.fixture(scope="module")
def tiny_llama(tiny_dirs):
    from factlocate import load_model

    return load_model(tiny_dirs["llama"])


def test_registry():
    assert get("memit") is memit.EDITOR


def test_memit_batch_edit(tiny_llama):
    model = tiny_llama
    before = {n: p.detach().clone() for n, p in arch.hf_model(model).named_parameters()}
    before_hf = {n: p.detach().clone() for n, p in arch.hf_named_parameters(model)}
    result = memit.compute_edit(model, REQS, memit.HParams(**FAST), progress=False, templates=TEMPLATES)
    for n, p in arch.hf_model(model).named_parameters():
        assert torch.equal(p, before[n]), n
    # the deltas are spread over exactly the layers of R, one MLP output matrix each
    assert [d.name for d in result.deltas] == [arch.mlp_out_name(model, l) for l in (1, 2)]
    assert all(float(d.delta.norm()) > 0 for d in result.deltas)
    for b, a in zip(result.probs_before, result.probs_after):
        assert a["new"] > b["new"]
    with result.applied(model):
        changed = {n for n, p in arch.hf_named_parameters(model) if not torch.equal(p, before_hf[n])}
        assert changed == {arch.mlp_out_name(model, l) for l in (1, 2)}
    for n, p in arch.hf_model(model).named_parameters():
        assert torch.equal(p, before[n]), n
    assert len(result.extra["layer_norms"]) == 2


def test_memit_rejects_bad_input(tiny_llama):
    conflict = [REQS[0], EditRequest(prompt="{} is located in", subject="Vinson Massif", target_new="Rome",
                                     relation_id="P30")]
    with pytest.raises(FactlocateError, match="conflicting"):
        memit.compute_edit(tiny_llama, conflict, memit.HParams(**FAST), progress=False, templates=TEMPLATES)
    with pytest.raises(FactlocateError, match="empty"):
        memit.compute_edit(tiny_llama, [], memit.HParams(**FAST), progress=False)
    with pytest.raises(FactlocateError, match="out of range"):
        memit.compute_edit(tiny_llama, REQS, memit.HParams(**{**FAST, "layers": [2, 3, 4]}), progress=False)
    for bad in ({"layers": []}, {"mom2_update_weight": 0.0}, {"clamp_norm_factor": -1.0}, {"fact_token": "x"}):
        with pytest.raises(FactlocateError):
            memit.HParams(**{**FAST, **bad})


def test_memit_configs():
    assert memit.HParams.load("gpt-j-6b").layers == [3, 4, 5, 6, 7, 8]
    hp = memit.HParams.load("gpt2-xl")
    assert hp.layers == [13, 14, 15, 16, 17] and hp.mom2_update_weight == 20000 and hp.v_num_grad_steps == 20
    for spec in ("smollm2-135m", "gemma-3-270m"):
        memit.HParams.load(spec)


def test_range_helpers():
    assert layer_range.best_window([0, 1, 5, 4, 0, 3], 2) == [2, 3]
    assert layer_range.best_window([0, 1, 5, 4, 0, 3], 1) == [2]
    with pytest.raises(FactlocateError):
        layer_range.best_window([1, 2], 3)
    assert layer_range.centre_layer(np.array([0.0, 0.1, 1.0, 1.0, 0.2])) in (2, 3)


def test_severed_gap_runs(tiny_llama):
    gap = layer_range.severed_gap(tiny_llama, [("Vinson Massif is located in", "Vinson Massif")],
                                  samples=2, progress=False)
    assert gap.shape == (arch.n_layers(tiny_llama),) and np.isfinite(gap).all()
