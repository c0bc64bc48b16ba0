"""Target optimisation from KV-cache suffixes equals whole rows, and falls back when the cache is broken."""
from __future__ import annotations

import pytest
import torch

from factlocate import arch
from factlocate.editors.keyvalue import target_batch, target_vector
from factlocate.editors.base import EditRequest
from factlocate.forward import kv
from factlocate.identity import state

TEMPLATES = ["{}", "The city. {}", "In the news today, as it was said. {}"]
REQUESTS = [
    EditRequest("{} is located in the city of", "The Eiffel Tower", "Rome", target_true="Paris"),
    EditRequest("The sport played by {} is", "LeBron James", "football", target_true="basketball"),
    EditRequest("{}, whose mother tongue is", "Danielle Darrieux", "English", target_true="French"),
]
OPTIONS = dict(v_num_grad_steps=6, v_lr=0.5, v_weight_decay=0.5, clamp_norm_factor=0.75, kl_factor=0.0625)


def _batches(model):
    return [target_vector.build_batch(model, r.prompt, r.subject, r.target_new, TEMPLATES) for r in REQUESTS]


@pytest.mark.parametrize("where", ["resid", "mlp"])
def test_suffix_runs_equal_whole_rows(tiny_model, where):
    layer = 2
    hook = arch.hook_resid(layer) if where == "resid" else arch.hook_mlp_value(layer)
    batches = _batches(tiny_model)
    with torch.enable_grad():
        whole = target_batch.optimise_many(tiny_model, batches, hook, layer, reuse=False, **OPTIONS)
        suffix = target_batch.optimise_many(tiny_model, batches, hook, layer, reuse=True, **OPTIONS)
    for w, s in zip(whole, suffix):
        assert len(w.losses) == len(s.losses)
        torch.testing.assert_close(s.v_init, w.v_init, atol=1e-5, rtol=0)
        torch.testing.assert_close(s.target, w.target, atol=1e-4, rtol=1e-4)


def test_groups_cover_every_row_once():
    lookup = [7, 3, 12, 4, 8, 3, 20]
    lengths = [9, 5, 14, 30, 10, 6, 22]
    for cost in (0, 4, 1000):
        groups = target_batch._groups(lookup, lengths, cost)
        rows = sorted(r for _, members in groups for r in members)
        assert rows == list(range(len(lookup)))
        assert all(start == min(lookup[r] for r in members) for start, members in groups)
    free = target_batch._groups(lookup, lengths, 0)  # groups cost nothing: every row runs only its own suffix
    assert sum(len(m) * (max(lengths[r] for r in m) - s) for s, m in free) == sum(
        n - k for n, k in zip(lengths, lookup))
    assert len(target_batch._groups(lookup, lengths, 1000)) == 1


def test_a_broken_cache_is_refused_and_whole_rows_run(tiny_gpt2, monkeypatch):
    layer, hook = 1, arch.hook_resid(1)
    batches = _batches(tiny_gpt2)
    state(tiny_gpt2).checks.pop("target optimisation", None)
    real = kv.from_layers

    def shifted(model, per_layer):  # keys of the wrong positions
        return real(model, [(k.roll(1, dims=-2), v) for k, v in per_layer])

    monkeypatch.setattr(kv, "from_layers", shifted)
    try:
        with torch.enable_grad():
            checked = target_batch.optimise_many(tiny_gpt2, batches, hook, layer, **OPTIONS)
            whole = target_batch.optimise_many(tiny_gpt2, batches, hook, layer, reuse=False, **OPTIONS)
        assert state(tiny_gpt2).checks["target optimisation"] is False
        for c, w in zip(checked, whole):
            assert torch.equal(c.target, w.target)
    finally:
        state(tiny_gpt2).checks.pop("target optimisation", None)
