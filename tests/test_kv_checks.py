"""Key/value reuse checks itself: a broken cache is caught once, warned about once, and the
numbers come from the plain path (batched tracing, shared-prompt scoring, generation)."""
from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
import transformer_lens
import transformers
from transformers import DynamicCache

from factlocate import load_model, scoring, tokens
from factlocate.generate import cached_decoding_verified, decoder, generate, head_logits_verified
from factlocate.forward import control, kv
from factlocate.identity import state
from factlocate.tracing import batched, trace

PROMPT, SUBJECT = "The capital of Roman Republic is", "Roman Republic"

pytestmark = pytest.mark.usefixtures("one_thread")


class ForgetfulCache(DynamicCache):
    """A cache that stores nothing: every forward sees only its own tokens."""

    def update(self, key_states, value_states, layer_idx, *args, **kwargs):
        return key_states, value_states


@pytest.fixture
def fresh(tiny_dirs):
    """A freshly loaded tiny GPT-2 (its checks have not run yet)."""
    return load_model(tiny_dirs["gpt2"])


def test_broken_prefix_cache_falls_back_to_the_naive_grid(fresh, monkeypatch, caplog):
    real = kv.from_layers

    def broken(model, per_layer):
        return real(model, [(2.0 * k, v) for k, v in per_layer])

    monkeypatch.setattr(kv, "from_layers", broken)
    with caplog.at_level(logging.WARNING, logger="factlocate"):
        fast = trace(fresh, PROMPT, SUBJECT, kind="hidden", samples=2, noise=0.5)
        again = trace(fresh, PROMPT, SUBJECT, kind="attn", window=2, samples=2, noise=0.5)
    slow = trace(fresh, PROMPT, SUBJECT, kind="hidden", samples=2, noise=0.5, engine="naive")
    np.testing.assert_allclose(fast.scores, slow.scores, atol=1e-5, rtol=0)
    assert again.scores.shape == slow.scores.shape
    assert state(fresh).checks["batched tracing"] is False
    warnings = [r.getMessage() for r in caplog.records if "batched tracing" in r.getMessage()]
    assert len(warnings) == 1 and "\n" not in warnings[0]
    assert f"transformers {transformers.__version__}" in warnings[0] and "using the plain path" in warnings[0]


def test_broken_shared_prompt_cache_falls_back_to_plain_scoring(fresh, monkeypatch):
    monkeypatch.setattr(kv, "empty", lambda model: ForgetfulCache())
    prompts, targets = ["The Eiffel Tower is in", "Rome is the capital of"], [["Paris France", "Rome"]] * 2
    shared = scoring.shared_prompt_nll(fresh, prompts, targets)
    plain = scoring.target_nll(fresh, [p for p in prompts for _ in range(2)], [t for ts in targets for t in ts])
    np.testing.assert_allclose(np.array(shared).reshape(-1), plain.numpy(), atol=1e-6)
    assert state(fresh).checks["shared-prompt scoring"] is False


def test_broken_decoding_cache_falls_back_to_full_forwards(fresh, tiny_dirs, monkeypatch):
    prompts = ["The Eiffel Tower is located in", "LeBron James plays"]
    monkeypatch.setenv(kv.ENV, "0")  # reference: no reuse at all
    reference = generate(fresh, prompts, max_length=12, seed=3)
    monkeypatch.delenv(kv.ENV)
    monkeypatch.setattr(kv, "empty", lambda model: ForgetfulCache())
    assert generate(fresh, prompts, max_length=12, seed=3) == reference
    assert state(fresh).checks["cached generation"] is False


def test_the_decoding_head_gives_the_models_own_logits_on_every_architecture(tiny_model, monkeypatch):
    rows = [kv.probe_ids(tiny_model, 6), kv.probe_ids(tiny_model, 4)]
    ids, mask = tokens.batch(tiny_model, rows, pad_left=True)
    with torch.no_grad():
        fast, plain = (decoder(tiny_model, ids, mask, False, head=h)(None) for h in (True, False))
    torch.testing.assert_close(fast, plain, atol=1e-5, rtol=1e-5)
    assert head_logits_verified(tiny_model)
    prompts = ["The Eiffel Tower is located in", "LeBron James plays", "Rome is"]
    with_head = generate(tiny_model, prompts, max_length=12, seed=3)
    monkeypatch.setitem(state(tiny_model).checks, "decoding head", False)  # the model's own head, same model
    assert generate(tiny_model, prompts, max_length=12, seed=3) == with_head


def test_a_broken_decoding_head_falls_back_to_the_models_own(fresh, monkeypatch):
    prompts = ["The Eiffel Tower is located in", "LeBron James plays"]
    reference = generate(fresh, prompts, max_length=12, seed=3)
    state(fresh).checks.pop("decoding head")
    real = control.head_logits
    monkeypatch.setattr(control, "head_logits", lambda model, normed: real(model, normed) * 1.05)
    assert generate(fresh, prompts, max_length=12, seed=3) == reference
    assert state(fresh).checks["decoding head"] is False


def test_working_caches_pass_their_checks_and_match_the_plain_paths(fresh):
    if not batched.reuse_verified(fresh):
        pytest.skip(f"KV reuse does not match under {kv.versions()} (see the version-pinned test)")
    prompts = ["The Eiffel Tower is located in", "LeBron James plays"]
    with_reuse = generate(fresh, prompts, max_length=12, seed=3)
    assert cached_decoding_verified(fresh)
    state(fresh).checks["cached generation"] = False  # force the plain path on the same model
    assert generate(fresh, prompts, max_length=12, seed=3) == with_reuse


CHECKED = {
    # (transformers, transformer-lens): whether reuse matches full forwards there (checked on this project).
    ("5.23.0", "4.3.0"): True,
    ("5.24.0", "4.3.0"): False,  # 5.24 renames the attention kwarg past_key_values -> cache
}


def test_reuse_verdicts_on_the_versions_they_were_checked_on(fresh):
    from importlib.metadata import version

    key = (transformers.__version__, getattr(transformer_lens, "__version__", None) or version("transformer-lens"))
    if key not in CHECKED:
        pytest.skip(f"no recorded verdict for transformers {key[0]}, transformer-lens {key[1]}")
    verdicts = [batched.reuse_verified(fresh), cached_decoding_verified(fresh)]
    scoring.shared_prompt_nll(fresh, ["The capital of"], [["Paris", "Rome"]])
    verdicts.append(state(fresh).checks.get("shared-prompt scoring", False))
    assert verdicts == [CHECKED[key]] * 3


def test_reuse_can_be_turned_off(fresh, monkeypatch):
    monkeypatch.setenv(kv.ENV, "0")
    assert not batched.reuse_verified(fresh)
    assert "batched tracing" not in state(fresh).checks  # nothing checked, nothing cached
    torch.manual_seed(0)
    r = trace(fresh, PROMPT, SUBJECT, kind="mlp", window=2, samples=2, noise=0.5)
    n = trace(fresh, PROMPT, SUBJECT, kind="mlp", window=2, samples=2, noise=0.5, engine="naive")
    np.testing.assert_allclose(r.scores, n.scores, atol=1e-5, rtol=0)


def test_a_probe_may_allow_the_plain_paths_own_rounding(fresh):
    plain = torch.tensor([-3.5, -1.0])
    reused = plain + torch.tensor([2.0e-4, 0.0])
    assert not kv.verified(fresh, "floor: none", lambda: (reused, plain))
    assert kv.verified(fresh, "floor: wider", lambda: (reused, plain, plain + 3.5e-4))
    assert not kv.verified(fresh, "floor: narrower", lambda: (reused, plain, plain + 5e-5))
