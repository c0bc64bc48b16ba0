"""Metrics against hand-computed values: NLL, ES/NS direction, S, GE, RS and zsRE token accuracy.

`FixedModel` is a stand-in language model whose next-token distribution is the
same at every position: p(t) = w[t] / Z. Then the length-normalised NLL of a
target is mean_j log(Z / w[t_j]), computable by hand.
"""
import math
from types import SimpleNamespace

import nltk
import numpy as np
import pytest
import torch

from factlocate import scoring, tokens
from factlocate.datasets.records import CounterFactRecord, ZsreRecord
from factlocate.metrics import consistency, counterfact, fluency, summary, zsre
from factlocate.tiny import build_tokenizer


class FixedModel:
    """logits[b, p] = log w for every row and position (a GPT-2-style tokenizer, no BOS)."""

    def __init__(self, weights: torch.Tensor, tokenizer):
        self.tokenizer = tokenizer
        self.logw = weights.log()
        self.cfg = SimpleNamespace(device="cpu")
        self.config = SimpleNamespace(architectures=["GPT2LMHeadModel"])

    def __call__(self, ids, attention_mask=None, past_key_values=None, return_type="logits", use_cache=None):
        logits = self.logw.expand(ids.shape[0], ids.shape[1], -1).clone()
        return (logits, _NoCache()) if return_type == "logits_and_cache" else logits


class _NoCache:
    """The KV cache of a model whose logits ignore context."""

    def batch_repeat_interleave(self, repeats: int) -> None:
        pass


@pytest.fixture(scope="module")
def tok():
    return build_tokenizer()


def _fixed(tok, boosts: dict[int, float]):
    w = torch.ones(len(tok), dtype=torch.float64)
    for t, v in boosts.items():
        w[t] = v
    return FixedModel(w, tok), float(w.sum())


RECORD = CounterFactRecord(
    case_id=7, prompt="{} is located in", subject="The Eiffel Tower", target_new="Rome", target_true="Paris France",
    paraphrase_prompts=("Where is The Eiffel Tower? It is in", "The Eiffel Tower stands in"),
    neighborhood_prompts=("The Louvre is located in",),
)


def test_nll_of_multi_token_target_is_the_length_normalised_sum(tok):
    new = tokens.encode_target(SimpleNamespace(tokenizer=tok), "Rome")
    true = tokens.encode_target(SimpleNamespace(tokenizer=tok), "Paris France")
    assert len(true) >= 2 and not set(new) & set(true)
    model, z = _fixed(tok, {new[0]: 8.0, true[0]: 2.0})
    nll = scoring.target_nll(model, ["The Eiffel Tower is located in"] * 2, ["Rome", "Paris France"])
    want_new = sum(math.log(z / (8.0 if t == new[0] else 1.0)) for t in new) / len(new)
    want_true = sum(math.log(z / (2.0 if t == true[0] else 1.0)) for t in true) / len(true)
    assert nll.tolist() == pytest.approx([want_new, want_true], rel=1e-5)


def test_success_and_magnitude_directions(tok):
    m = SimpleNamespace(tokenizer=tok)
    new, true = tokens.encode_target(m, "Rome"), tokens.encode_target(m, "Paris France")
    model, z = _fixed(tok, {t: 50.0 for t in new})  # the new target is more likely everywhere
    nlls = counterfact.prompt_nlls(model, RECORD)
    assert [len(nlls[f"{g}_probs"]) for g in counterfact.GROUPS] == [1, 2, 1]
    p_new = math.exp(-sum(math.log(z / 50.0) for _ in new) / len(new))
    p_true = 1 / z
    s = counterfact.case_scores(nlls)
    assert (s["ES"], s["PS"], s["NS"]) == (1.0, 1.0, 0.0)
    assert s["EM"] == pytest.approx(p_new - p_true, rel=1e-4)
    assert s["PM"] == pytest.approx(p_new - p_true, rel=1e-4)
    assert s["NM"] == pytest.approx(p_true - p_new, rel=1e-4)
    model, _ = _fixed(tok, {t: 50.0 for t in true})  # now the true target wins
    s = counterfact.case_scores(counterfact.prompt_nlls(model, RECORD))
    assert (s["ES"], s["PS"], s["NS"]) == (0.0, 0.0, 1.0)


def test_case_scores_average_over_prompts():
    nlls = {
        "rewrite_prompts_probs": [{"target_new": 1.0, "target_true": 2.0}],
        "paraphrase_prompts_probs": [{"target_new": 1.0, "target_true": 2.0}, {"target_new": 3.0, "target_true": 2.0}],
        "neighborhood_prompts_probs": [{"target_new": 1.0, "target_true": 0.5}] * 3 + [{"target_new": 1.0, "target_true": 4.0}],
    }
    s = counterfact.case_scores(nlls)
    assert s["ES"] == 1.0 and s["PS"] == 0.5 and s["NS"] == 0.75
    e = math.exp
    assert s["EM"] == pytest.approx(e(-1) - e(-2))
    assert s["PM"] == pytest.approx(((e(-1) - e(-2)) + (e(-3) - e(-2))) / 2)
    assert s["NM"] == pytest.approx((3 * (e(-0.5) - e(-1)) + (e(-4) - e(-1))) / 4)


def test_harmonic_mean_and_confidence_interval():
    assert summary.hmean([1.0, 0.5, 0.25]) == pytest.approx(3 / 7)
    assert summary.hmean([1.0, 0.0, 0.5]) == 0.0
    mean, ci = summary.mean_ci([0.0, 1.0, 1.0, 0.0])
    assert (mean, ci) == pytest.approx((50.0, 100 * 1.96 * 0.5 / 2))
    s = summary.summarize(
        [{"ES": 1.0, "PS": 0.5, "NS": 0.25, "EM": 0.1, "PM": 0.0, "NM": 0.0, "GE": 6.0, "RS": None}] * 2
    )
    assert s["S"] == (pytest.approx(100 * 3 / 7), None)
    assert s["GE"] == pytest.approx((600.0, 0.0)) and s["RS"] is None
    assert summary.cell(s["RS"]) == "n/a" and summary.cell(s["ES"]) == "100.0 (0.0)"


def test_ngram_entropy_of_a_known_text():
    # "a b a b": bigrams ab, ba, ab -> H2 = h(1/3); trigrams aba, bab -> H3 = 1 bit.
    h2 = -(1 / 3) * math.log2(1 / 3) - (2 / 3) * math.log2(2 / 3)
    assert fluency.text_entropy("a b a b") == pytest.approx((2 / 3 * h2 + 4 / 3 * 1.0) / 2)
    assert fluency.text_entropy("one two") == pytest.approx((2 / 3 * 0.0 + 0.0) / 2)  # one bigram, no trigram
    assert fluency.n_gram_entropy(["a b a b", "one two"]) == pytest.approx(fluency.text_entropy("a b a b") / 2)


def test_ngram_entropy_matches_the_original_formula_with_nltk():
    text = "The Eiffel Tower is in Paris, and Paris is in France. The tower is tall, and it is in Paris."

    def original(sentence):  # ROME's compute_n_gram_entropy with FreqDist, on the same word tokens
        out = []
        for n, w in ((2, 2 / 3), (3, 4 / 3)):
            fd = nltk.FreqDist(nltk.ngrams(nltk.word_tokenize(sentence, preserve_line=True), n))
            f = torch.tensor([c for c in fd.values()], dtype=torch.float64)
            f = f / f.sum()
            out.append(w * float((-f * f.log2()).sum()))
        return sum(out) / 2

    assert fluency.text_entropy(text) == pytest.approx(original(text))


def test_tfidf_cosine_on_a_toy_corpus():
    vec = consistency.fit_vectorizer(["cat dog", "cat fish"])
    # smooth idf: idf(cat) = ln(3/3) + 1 = 1, idf(dog) = idf(fish) = ln(3/2) + 1
    idf = math.log(1.5) + 1
    assert consistency.tfidf_similarity("cat dog", "cat fish", vec) == pytest.approx(1 / (1 + idf**2))
    assert consistency.tfidf_similarity("cat dog", "dog cat", vec) == pytest.approx(1.0)
    assert consistency.tfidf_similarity("zebra", "cat", vec) == 0.0


def test_reference_score_is_none_without_snippets(tmp_path):
    import json

    path = tmp_path / "snips.json"
    path.write_text(json.dumps([{"relation_id": "P1", "target_id": "Q1", "samples": [{"text": "cat dog", "name": "x"}]},
                                {"relation_id": "P1", "target_id": "Q2", "samples": [{"text": "cat fish", "name": "y"}]}]))
    ref = consistency.load_reference(path)
    assert ref.score(["cat dog"], "P1", "Q1") == pytest.approx(1.0)
    assert ref.score(["cat dog"], "P1", "Q9") is None


def test_zsre_token_accuracy_is_per_token_teacher_forced(tok):
    m = SimpleNamespace(tokenizer=tok)
    answer = tokens.encode_target(m, "Paris France")
    loc = tokens.encode_target(m, "Rome")
    assert len(answer) >= 2
    # Only the answer's first token is ever the argmax: 1 of len(answer) tokens is correct.
    model, _ = _fixed(tok, {answer[0]: 100.0})
    rec = ZsreRecord(0, "Where is {}?", "the tower", "Paris France", ("Where does the tower stand?",),
                     "nq question: where is rome?", "Rome")
    correct = zsre.token_correct(model, rec)
    assert correct["rewrite_prompts_correct"] == [True] + [t == answer[0] for t in answer[1:]]
    assert len(correct["neighborhood_prompts_correct"]) == len(loc)
    s = zsre.case_scores(correct)
    want = sum(t == answer[0] for t in answer) / len(answer)
    assert s["Efficacy"] == pytest.approx(want) and s["Paraphrase"] == pytest.approx(want)
    assert s["Specificity"] == pytest.approx(sum(t == answer[0] for t in loc) / len(loc))


def test_prompt_nlls_match_a_direct_forward(tiny_model):
    """On every architecture (with and without BOS), the batched NLLs equal one plain forward each."""
    nlls = counterfact.prompt_nlls(tiny_model, RECORD)
    prompt = RECORD.paraphrase_prompts[1]
    for target, key in (("Rome", "target_new"), ("Paris France", "target_true")):
        p_ids, t_ids = tokens.encode(tiny_model, prompt), tokens.encode_target(tiny_model, target)
        with torch.no_grad():
            logp = tiny_model(tokens.to_tensor(tiny_model, p_ids + t_ids))[0].float().log_softmax(-1)
        want = -sum(logp[len(p_ids) - 1 + j, t].item() for j, t in enumerate(t_ids)) / len(t_ids)
        assert nlls["paraphrase_prompts_probs"][1][key] == pytest.approx(want, abs=1e-4)
    prompts = [p for ps in counterfact.prompts_of(RECORD).values() for p in ps]
    shared = scoring.shared_prompt_nll(tiny_model, prompts, [["Rome", "Paris France"]] * len(prompts))
    plain = scoring.target_nll(tiny_model, [p for p in prompts for _ in (0, 1)], ["Rome", "Paris France"] * len(prompts))
    np.testing.assert_allclose(np.array(shared).ravel(), plain.numpy(), atol=1e-5)
