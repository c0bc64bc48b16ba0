"""Key statistics (cache, resume, metadata checks), context templates and seeded generation."""
from __future__ import annotations

import pytest
import torch

from factlocate import arch, tokens
from factlocate.datasets.corpus import corpus_texts
from factlocate.editors.keyvalue import context_templates as ct
from factlocate.editors.keyvalue import key_stats
from factlocate.errors import FactlocateError
from factlocate.generate import generate


def test_shipped_corpus_reads_as_prose():
    texts = corpus_texts()
    assert len(texts) > 1900  # WikiText-2's test split (2,185 paragraphs) less the 200 held out for perplexity
    assert not any(t.startswith("=") for t in texts[:200])
    assert " @-@ " not in texts[0] and " , " not in texts[0]


def test_stats_match_direct_second_moment(tiny_gpt2, tmp_path):
    corpus = tmp_path / "c.txt"
    corpus.write_text("The Eiffel Tower is in Paris.\n\nRome is the capital of Italy.\nLeBron James plays basketball.\n")
    s = key_stats.key_stats(tiny_gpt2, 2, str(corpus), tokens_budget=10_000, progress=False)
    ks = []
    for t in corpus_texts(str(corpus)):
        _, cache = tiny_gpt2.run_with_cache(tokens.to_tensor(tiny_gpt2, tokens.encode(tiny_gpt2, t)))
        ks.append(cache[arch.hook_mlp_key(2)][0].double())
    k = torch.cat(ks)
    assert s.n_tokens == k.shape[0] and s.n_texts == 3
    # Keys come from float32 forwards: a padded batch and single texts differ by ~1e-6.
    torch.testing.assert_close(s.cov, k.T @ k / k.shape[0], atol=1e-5, rtol=1e-5)


def test_stats_cache_is_reused_and_checked(tiny_gpt2, tiny_dirs, monkeypatch):
    s1 = key_stats.key_stats(tiny_gpt2, 1, tokens_budget=1500, progress=False)
    assert s1.n_tokens >= 1500 and s1.meta.layer == 1
    path = key_stats.stats_path(s1.meta, tiny_gpt2)
    assert path.exists() and "L1" in path.name and "1500tok" in path.name and "float64" in path.name

    def boom(*a, **k):
        raise AssertionError("recomputed instead of using the cache")

    monkeypatch.setattr(key_stats, "_accumulate", boom)
    s2 = key_stats.key_stats(tiny_gpt2, 1, tokens_budget=1500, progress=False)
    assert torch.equal(s1.cov, s2.cov)
    # the same file offered for another layer, or another model, is rejected
    with pytest.raises(FactlocateError, match="layer"):
        key_stats.key_stats(tiny_gpt2, 2, tokens_budget=1500, path=path, progress=False)
    from factlocate import load_model

    other = load_model(tiny_dirs["llama"])
    with pytest.raises(FactlocateError, match="model"):
        key_stats.key_stats(other, 1, tokens_budget=1500, path=path, progress=False)
    with pytest.raises(FactlocateError, match="not a factlocate statistics file"):
        bad = path.with_name("bad.pt")
        bad.write_bytes(b"junk")
        key_stats.load(bad)


def test_stats_resume_after_interrupt(tiny_gpt2, tmp_path, monkeypatch):
    full = key_stats.key_stats(tiny_gpt2, 3, tokens_budget=2500, batch_tokens=200, save_every=2,
                               path=tmp_path / "full.pt", progress=False)
    calls = {"n": 0}
    real = key_stats.tokens.batch

    def flaky(*a, **k):
        calls["n"] += 1
        if calls["n"] == 6:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(key_stats.tokens, "batch", flaky)
    target = tmp_path / "resumed.pt"
    with pytest.raises(KeyboardInterrupt):
        key_stats.key_stats(tiny_gpt2, 3, tokens_budget=2500, batch_tokens=200, save_every=2, path=target, progress=False)
    assert target.with_suffix(".partial.pt").exists() and not target.exists()
    monkeypatch.setattr(key_stats.tokens, "batch", real)
    resumed = key_stats.key_stats(tiny_gpt2, 3, tokens_budget=2500, batch_tokens=200, save_every=2, path=target, progress=False)
    assert resumed.n_tokens == full.n_tokens and resumed.n_texts == full.n_texts
    assert torch.allclose(resumed.cov, full.cov, atol=1e-10)
    assert not target.with_suffix(".partial.pt").exists()


def test_bad_corpus_and_dtype(tiny_gpt2):
    with pytest.raises(FactlocateError, match="unknown corpus"):
        key_stats.key_stats(tiny_gpt2, 1, corpus="/no/such/file.txt", progress=False)
    with pytest.raises(FactlocateError, match="dtype"):
        key_stats.key_stats(tiny_gpt2, 1, dtype="float16", progress=False)
    with pytest.raises(FactlocateError, match="out of range"):
        key_stats.key_stats(tiny_gpt2, 7, progress=False)


def test_context_templates_are_seeded_and_cached(tiny_gpt2):
    a = ct.context_templates(tiny_gpt2, seed=3)
    assert len(a) == 21 and a[0] == "{}" and all(t.count("{}") == 1 and t.endswith(". {}") for t in a[1:])
    assert ct.context_templates(tiny_gpt2, seed=3) == a
    assert ct.generate_templates(tiny_gpt2, seed=3) == a  # regenerated, not only read back
    assert ct.context_templates(tiny_gpt2, lengths=((10, 5),), seed=3) != a[:6]


def test_generate_is_seeded_and_batched(tiny_model):
    prompts = ["The Eiffel Tower is located in", "LeBron James plays"]
    a = generate(tiny_model, prompts, max_length=12, seed=1, n_per_prompt=2)
    assert a == generate(tiny_model, prompts, max_length=12, seed=1, n_per_prompt=2)
    assert len(a) == 4 and all(t.startswith(p) for t, p in zip(a, [prompts[0]] * 2 + [prompts[1]] * 2))
    # greedy decoding: a left-padded batch gives what each prompt gives alone
    greedy = generate(tiny_model, prompts, max_length=12, top_k=1)
    assert greedy == [generate(tiny_model, [p], max_length=12, top_k=1)[0] for p in prompts]


def test_generate_matches_bridge_forward(tiny_model):
    """Greedy generation with the KV cache gives the tokens the bridge's plain forward picks."""
    from factlocate.generate import clean

    prompt = "The Eiffel Tower is located in"
    ids = tokens.encode(tiny_model, prompt)
    with torch.no_grad():
        for _ in range(6):
            ids.append(int(tiny_model(tokens.to_tensor(tiny_model, ids))[0, -1].argmax()))
    want = clean(tiny_model.tokenizer.decode(ids, skip_special_tokens=True))
    assert generate(tiny_model, [prompt], max_length=len(ids), top_k=1) == [want]
