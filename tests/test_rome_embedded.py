"""ROME on the embedded Gemma-3-270M: the paper's example rewrite takes effect and is undone."""
from __future__ import annotations

import pytest
import torch

from factlocate import arch
from factlocate.editors.keyvalue import rome
from factlocate.editors.base import EditRequest
from factlocate.generate import generate


@pytest.mark.embedded
def test_rome_rewrites_mother_tongue_on_gemma(gemma):
    hp = rome.load("gemma-3-270m", {"stats_tokens": 10_000})
    req = EditRequest("The mother tongue of {} is", "Danielle Darrieux", "English", target_true="French")
    w = arch.mlp_out_weight(gemma, hp.layer).detach().clone()
    result = rome.compute_edit(gemma, req, hp)
    assert result.probs_before[0]["true"] > result.probs_before[0]["new"]
    assert result.probs_after[0]["new"] > result.probs_after[0]["true"]
    assert torch.equal(arch.mlp_out_weight(gemma, hp.layer), w)
    prompt = "Danielle Darrieux's mother tongue is"
    before = generate(gemma, [prompt], max_length=12, seed=0)
    with result.applied(gemma):
        after = generate(gemma, [prompt], max_length=12, seed=0)
    assert before != after
    assert torch.equal(arch.mlp_out_weight(gemma, hp.layer), w)
