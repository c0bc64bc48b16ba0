"""Causal tracing: exactness of the batched engine, known cells, determinism, noise, errors."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from factlocate.errors import FactlocateError
from factlocate.tracing import GridSpec, RunSpec, parse_noise, resolve_noise, trace, trace_kinds, window_layers

PROMPT, SUBJECT = "The capital of Roman Republic is", "Roman Republic"  # subject mid-prompt
FAST = dict(samples=2, noise=0.5)


pytestmark = pytest.mark.usefixtures("one_thread")


CASES = [
    dict(kind="hidden"),
    dict(kind="mlp", window=2),
    dict(kind="attn", window=3),
    dict(kind="hidden", sever="mlp"),
    dict(kind="hidden", sever="attn", noise_draws="reference"),
    dict(kind="attn", window=2, chunk_rows=4),  # two sites per pass: rows join and chunks split
]


def test_batched_equals_naive(tiny_model):
    for case in CASES:
        fast = trace(tiny_model, PROMPT, SUBJECT, **FAST, **case)
        slow = trace(tiny_model, PROMPT, SUBJECT, **FAST, engine="naive", **case)
        assert fast.scores.shape == slow.scores.shape == (len(fast.input_ids), 4)
        np.testing.assert_allclose(fast.scores, slow.scores, atol=1e-5, rtol=0, err_msg=str(case))
        assert fast.low_score == pytest.approx(slow.low_score, abs=1e-6)
        assert fast.high_score == pytest.approx(slow.high_score, abs=1e-6)
        assert fast.answer_id == slow.answer_id


def test_prefix_cache_forward_equals_full_forward(tiny_model):
    """The engine runs positions t.. on the corrupted pass's cached keys/values of 0..t-1.

    Where this library combination cannot reuse caches, the once-per-model check says so
    (and the engine runs full rows): the test then checks that verdict instead.
    """
    from factlocate.forward import kv
    from factlocate.tracing import batched

    if not batched.reuse_verified(tiny_model):
        pytest.skip(f"KV reuse does not match full forwards under {kv.versions()}: the engine runs full rows")
    ids = torch.tensor([[5, 17, 23, 42, 8, 99, 3]] * 2)
    with torch.no_grad():
        cache = kv.empty(tiny_model)
        full = tiny_model(ids, past_key_values=cache)
        rows = torch.tensor([1, 0, 1])
        worst = 0.0
        for t in (1, 4, 6):
            part = tiny_model(ids[rows, t:], past_key_values=kv.prefix(tiny_model, kv.layers(cache), rows, t))
            worst = max(worst, float((part - full[rows, t:]).abs().max()))
    assert worst < 1e-5
    assert cache.get_seq_length() == 7  # the source cache is left as it was


def test_positions_before_subject_equal_low_score(tiny_gpt2):
    for case in CASES[:4]:
        r = trace(tiny_gpt2, PROMPT, SUBJECT, **FAST, **case)
        b, e = r.subject_range
        assert b >= 2
        assert np.all(r.scores[:b] == r.low_score), case
        assert not np.all(r.scores[b:] == r.low_score)
    # Restoring the last token's final hidden state gives back the clean run.
    r = trace(tiny_gpt2, PROMPT, SUBJECT, **FAST)
    assert r.scores[-1, -1] == pytest.approx(r.high_score, abs=1e-5)


def test_same_seed_same_result_other_seed_differs(tiny_gpt2):
    a = trace(tiny_gpt2, PROMPT, SUBJECT, kind="mlp", window=2, **FAST)
    b = trace(tiny_gpt2, PROMPT, SUBJECT, kind="mlp", window=2, **FAST)
    c = trace(tiny_gpt2, PROMPT, SUBJECT, kind="mlp", window=2, seed=2, **FAST)
    np.testing.assert_array_equal(a.scores, b.scores)
    assert a.low_score == b.low_score
    assert not np.allclose(a.scores, c.scores)


def test_severed_and_reference_draws_change_scores(tiny_gpt2):
    base = trace(tiny_gpt2, PROMPT, SUBJECT, **FAST)
    sev = trace(tiny_gpt2, PROMPT, SUBJECT, sever="mlp", **FAST)
    ref = trace(tiny_gpt2, PROMPT, SUBJECT, sever="mlp", noise_draws="reference", **FAST)
    b, _ = sev.subject_range
    assert not np.allclose(base.scores[b:, :-1], sev.scores[b:, :-1])
    # Severing after the last layer is a no-op.
    np.testing.assert_allclose(base.scores[:, -1], sev.scores[:, -1], atol=1e-6)
    assert not np.allclose(sev.scores, ref.scores)
    assert sev.sever == "mlp" and ref.noise_draws == "reference"


def test_multi_kind_matches_single_kind_and_token_range(tiny_gpt2):
    grids = [GridSpec("hidden", window=2), GridSpec("attn", window=2)]
    both = trace_kinds(tiny_gpt2, PROMPT, SUBJECT, grids, RunSpec(samples=2, noise="0.5"))
    single = trace(tiny_gpt2, PROMPT, SUBJECT, kind="attn", window=2, **FAST)
    np.testing.assert_allclose(both["attn"].scores, single.scores, atol=1e-6)
    last = trace(tiny_gpt2, PROMPT, SUBJECT, token_range="subject_last", **FAST)
    e = last.subject_range[1]
    assert last.positions == [e - 1]
    np.testing.assert_allclose(last.scores[0], both["hidden"].scores[e - 1], atol=1e-6)


def test_window_layers_match_the_original_definition():
    for n_layers in (4, 12, 48):
        for w in range(1, n_layers + 1):
            for layer in range(n_layers):
                original = range(max(0, layer - w // 2), min(n_layers, layer - (-w // 2)))
                assert window_layers(layer, w, n_layers) == original


def test_noise_specs_parse():
    assert parse_noise("0.1").factor == 0.1 and parse_noise(0.25).family == "gaussian"
    assert parse_noise("s3").relative and parse_noise("s3").factor == 3.0 and parse_noise("s").factor == 1.0
    assert parse_noise("u0.5").family == "uniform"
    assert parse_noise("m").family == "mvg"
    assert parse_noise("t3").degrees == 3.0
    for bad in ("", "x3", "s-1", "3s", "t1", "u", "-0.2", "nan"):
        with pytest.raises(FactlocateError):
            parse_noise(bad)


def test_noise_kinds_draw_and_trace(tiny_gpt2):
    n = resolve_noise(tiny_gpt2, "s3")
    assert n.sigma > 0 and n.level == pytest.approx(3 * n.sigma)
    u = resolve_noise(tiny_gpt2, "u0.5").draw(np.random.RandomState(1), 3, 2, 64)
    assert u.dtype == torch.float64 and u.abs().max() < 0.5
    for spec in ("m", "t3"):
        noise = resolve_noise(tiny_gpt2, spec)
        d1 = noise.draw(np.random.RandomState(1), 2, 3, 64)
        d2 = noise.draw(np.random.RandomState(1), 2, 3, 64)
        assert d1.shape == (2, 3, 64) and torch.equal(d1, d2)
        fast = trace(tiny_gpt2, PROMPT, SUBJECT, kind="hidden", samples=2, noise=noise)
        slow = trace(tiny_gpt2, PROMPT, SUBJECT, kind="hidden", samples=2, noise=noise, engine="naive",
                     token_range=[fast.subject_range[1] - 1])
        np.testing.assert_allclose(fast.scores[fast.subject_range[1] - 1], slow.scores[0], atol=1e-5)
    rep = trace(tiny_gpt2, PROMPT, SUBJECT, samples=2, noise=0.5, replace=True, token_range="subject_last")
    add = trace(tiny_gpt2, PROMPT, SUBJECT, samples=2, noise=0.5, token_range="subject_last")
    assert rep.noise["replace"] and rep.low_score != add.low_score


def test_sigma_excludes_bos(tiny_dirs):
    from factlocate import load_model
    from factlocate.tracing.noise import token_embeddings

    gemma = load_model(tiny_dirs["gemma3"])  # prepends <bos>
    emb = token_embeddings(gemma, ["Roman Republic"])
    assert len(emb) == len(gemma.tokenizer("Roman Republic", add_special_tokens=False)["input_ids"])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(subject="Eiffel Tower"), "does not occur"),
        (dict(prompt="  "), "empty"),
        (dict(kind="mlp", window=5), "larger than the model"),
        (dict(noise="gauss"), "cannot parse noise"),
        (dict(kind="volume"), "unknown kind"),
        (dict(kind="mlp", sever="mlp"), "restores hidden states"),
        (dict(samples=0), "samples"),
        (dict(engine="fast"), "unknown engine"),
        (dict(token_range=[99]), "token_range"),
    ],
)
def test_bad_input_raises_clear_errors(tiny_gpt2, kwargs, message):
    args = dict(prompt=PROMPT, subject=SUBJECT, samples=2, noise=0.5)
    args.update(kwargs)
    with pytest.raises(FactlocateError, match=message):
        trace(tiny_gpt2, args.pop("prompt"), args.pop("subject"), **args)


@pytest.mark.embedded
@pytest.mark.parametrize("name", ["smollm", "gemma"])
def test_embedded_batched_equals_naive(name, request):
    model = request.getfixturevalue(name)
    prompt, subject = "The Eiffel Tower is located in the city of", "The Eiffel Tower"
    for kind, options in (("mlp", {}), ("hidden", {"sever": "mlp"})):
        r = trace(model, prompt, subject, kind=kind, samples=3, token_range="subject_last", **options)
        n = trace(model, prompt, subject, kind=kind, samples=3, token_range="subject_last", engine="naive", **options)
        assert r.answer.strip() == "Paris"
        np.testing.assert_allclose(r.scores, n.scores, atol=1e-5)
        assert r.high_score > 0.5 and r.low_score < r.high_score
