"""Attribution patching, screen-and-verify, symmetric token replacement and the readout metrics."""
from __future__ import annotations

import json

from dataclasses import asdict

import numpy as np
import pytest
import torch

from factlocate import arch, tokens
from factlocate.errors import FactlocateError
from factlocate.hooks.corruption import CorruptEmbedding
from factlocate.tracing import trace
from factlocate.tracing.swap import subject_swap

PROMPT, SUBJECT = "The capital of Roman Republic is", "Roman Republic"

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tiny_double(tiny_dirs):
    """Tiny random models in float64: with tiny noise, float32 rounding would swamp the effects."""
    from factlocate import load_model

    return {a: load_model(tiny_dirs[a], dtype=torch.float64) for a in ("gpt2", "llama", "gemma3")}


@pytest.mark.parametrize("arch_name", ["gpt2", "llama", "gemma3"])
@pytest.mark.parametrize("kind", ["hidden", "mlp", "attn"])
def test_atp_matches_exact_effects_when_first_order_is_nearly_exact(tiny_double, arch_name, kind):
    """With tiny noise the restored effect is linear in the patch, so AtP must match it: this checks
    the gradient bookkeeping (which activation, which row, which sign). One-layer windows: a wider
    window's estimate sums its layers' estimates, which also counts the paths from one restored layer
    to another at the same token, so it differs from the joint restoration beyond first order."""
    window = 1
    model = tiny_double[arch_name]
    common = dict(kind=kind, window=window, samples=2, noise=1e-4, metric="logprob")
    exact = trace(model, PROMPT, SUBJECT, **common)
    atp = trace(model, PROMPT, SUBJECT, method="atp", **common)
    assert atp.low_score == pytest.approx(exact.low_score, rel=1e-5)
    effect_exact, effect_atp = exact.scores - exact.low_score, atp.scores - atp.low_score
    scale = np.abs(effect_exact).max()
    assert scale > 0
    np.testing.assert_allclose(effect_atp, effect_exact, atol=0.02 * scale, rtol=0)
    assert not atp.exact_mask.any() and atp.method == "atp"


def test_verified_cells_equal_the_exact_engine(tiny_gpt2):
    common = dict(kind="mlp", window=1, samples=2, noise=0.05)
    exact = trace(tiny_gpt2, PROMPT, SUBJECT, **common)
    screened = trace(tiny_gpt2, PROMPT, SUBJECT, method="atp+verify", top=3, **common)
    mask = screened.exact_mask
    assert mask.sum() >= 3 and not mask.all()
    np.testing.assert_allclose(screened.scores[mask], exact.scores[mask], atol=1e-6, rtol=0)
    # Estimated cells keep AtP's value.
    np.testing.assert_allclose(screened.scores[~mask], screened.estimates[~mask], atol=0, rtol=0)
    # The exact top-3 cells are among the verified ones.
    top = np.argsort(-exact.scores, axis=None)[:3]
    assert all(mask.reshape(-1)[k] for k in top)
    # Replaying the rule on the AtP estimates and the full exact grid gives the same cells and values.
    from factlocate.tracing import verify

    values, replayed = verify.replay(screened.estimates, exact.scores, screened.low_score, screened.before_subject,
                                     top=3)
    np.testing.assert_array_equal(replayed, mask)
    np.testing.assert_allclose(values, screened.scores, atol=1e-6, rtol=0)


def test_budgeted_cells_equal_the_exact_engine(tiny_gpt2):
    common = dict(kind="mlp", window=1, samples=2, noise=0.05)
    exact = trace(tiny_gpt2, PROMPT, SUBJECT, **common)
    budgeted = trace(tiny_gpt2, PROMPT, SUBJECT, method="atp+budget", budget=0.3, refine=0, **common)
    mask, before = budgeted.exact_mask, budgeted.before_subject
    after = mask[~before]
    assert after.sum() == int(np.ceil(0.3 * after.size)) and mask[before].all()
    np.testing.assert_allclose(budgeted.scores[mask], exact.scores[mask], atol=1e-6, rtol=0)
    np.testing.assert_allclose(budgeted.scores[~mask], budgeted.estimates[~mask], atol=0, rtol=0)
    # the cells run exactly are the ones AtP ranks highest, and replaying the mode gives the same grid
    from factlocate.tracing import verify

    values, replayed = verify.replay_budget(budgeted.estimates, exact.scores, budgeted.low_score, before, 0.3)
    np.testing.assert_array_equal(replayed, mask)
    np.testing.assert_allclose(values, budgeted.scores, atol=1e-6, rtol=0)
    with pytest.raises(FactlocateError, match="budget must be a share"):
        trace(tiny_gpt2, PROMPT, SUBJECT, method="atp+budget", budget=0, **common)


def test_the_budget_climb_runs_the_neighbours_of_the_best_exact_cells(tiny_gpt2):
    """Per-kind shares, then the climb: every cell within `refine` layers of the best exact cells is exact, the
    exact cells equal the engine's, and replaying the mode on the two grids gives the live grid."""
    from factlocate.tracing import RunSpec, verify

    common = dict(kind="mlp", window=1, samples=2, noise=0.05)
    exact = trace(tiny_gpt2, PROMPT, SUBJECT, **common)
    shares = {"hidden": 0.5, "mlp": 0.1, "attn": 0.5}
    live = trace(tiny_gpt2, PROMPT, SUBJECT, method="atp+budget", budget=shares, refine=1, **common)
    mask, before = live.exact_mask, live.before_subject
    first = verify.budget_cells(live.estimates, before, 0.1)
    assert all(mask[c] for c in first) and mask[~before].sum() > len(first)  # the climb added cells
    np.testing.assert_allclose(live.scores[mask], exact.scores[mask], atol=1e-6, rtol=0)
    assert not verify.climb_cells(live.scores, mask, before, 1)  # nothing left around the best exact cells
    values, replayed = verify.replay_budget(live.estimates, exact.scores, live.low_score, before, 0.1, refine=1)
    np.testing.assert_array_equal(replayed, mask)
    np.testing.assert_allclose(values, live.scores, atol=1e-6, rtol=0)
    # a run saved before the climb existed is read as having none; shares per kind must name every kind
    old = {k: v for k, v in asdict(RunSpec(method="atp+budget", budget=0.5)).items() if k != "refine"}
    assert RunSpec.from_dict(old).refine == 0 and RunSpec.from_dict({"method": "exact"}).refine == RunSpec().refine
    assert RunSpec.from_dict({"method": "exact", "budget": 0.5}) == RunSpec()  # an exact run saved with the old share
    with pytest.raises(FactlocateError, match="one per kind"):
        RunSpec(method="atp+budget", budget={"mlp": 0.2})


def test_str_keeps_length_and_equals_running_the_swapped_prompts(tiny_gpt2):
    from factlocate.datasets.known_facts import load_facts

    swap = subject_swap(tiny_gpt2, PROMPT, SUBJECT, load_facts(), samples=3, seed=1)
    n = len(tokens.encode(tiny_gpt2, PROMPT))
    assert all(len(ids) == n for ids in swap.swapped_ids) and SUBJECT not in swap.partners
    b, e = tokens.subject_range(tiny_gpt2, PROMPT, SUBJECT)
    ids = torch.tensor([tokens.encode(tiny_gpt2, PROMPT)] * 3)
    hook = CorruptEmbedding(swap.draw(None, 3, e - b, 64), b, e, replace=True, first_row=0)
    with torch.no_grad():
        corrupted = tiny_gpt2.run_with_hooks(ids, fwd_hooks=[(arch.HOOK_EMBED, hook)])[:, -1]
        swapped = tiny_gpt2(torch.tensor(swap.swapped_ids))[:, -1]
    torch.testing.assert_close(corrupted, swapped, atol=1e-5, rtol=0)
    r = trace(tiny_gpt2, PROMPT, SUBJECT, corrupt="str", samples=3, seed=1, token_range="subject_last")
    assert r.noise["partners"] == swap.partners and r.corrupt == "str"
    p = torch.softmax(swapped.float(), -1).mean(0)[r.answer_id]
    assert r.low_score == pytest.approx(float(p), abs=1e-6)


def test_no_same_length_partner_is_a_clear_error(tiny_gpt2):
    with pytest.raises(FactlocateError, match="STR cannot corrupt"):
        subject_swap(tiny_gpt2, PROMPT, SUBJECT, [{"subject": "Roman Republic"}], samples=2, seed=0)


@pytest.mark.parametrize("metric", ["prob", "logprob", "logit_diff"])
def test_metrics_by_hand(tiny_gpt2, metric):
    """Low and high scores recomputed by hand; restoring the last hidden state gives the clean score."""
    r = trace(tiny_gpt2, PROMPT, SUBJECT, metric=metric, samples=2, noise=0.5)
    naive = trace(tiny_gpt2, PROMPT, SUBJECT, metric=metric, samples=2, noise=0.5, engine="naive")
    np.testing.assert_allclose(r.scores, naive.scores, atol=1e-5, rtol=0)
    ids = torch.tensor([r.input_ids] * 3)
    b, e = r.subject_range
    noise = torch.from_numpy(np.random.RandomState(1).randn(2, e - b, 64)) * r.noise_level
    with torch.no_grad():
        logits = tiny_gpt2.run_with_hooks(ids, fwd_hooks=[(arch.HOOK_EMBED, CorruptEmbedding(noise, b, e))])[:, -1]
    clean, corrupted = logits[0].float(), logits[1:].float()
    ans = r.answer_id
    if metric == "prob":
        low, high = torch.softmax(corrupted, -1).mean(0)[ans], torch.softmax(clean, -1)[ans]
    elif metric == "logprob":
        low, high = torch.log_softmax(corrupted, -1)[:, ans].mean(), torch.log_softmax(clean, -1)[ans]
    else:
        probs = torch.softmax(corrupted, -1).mean(0)
        probs[ans] = -1
        c = int(probs.argmax())
        low, high = (corrupted[:, ans] - corrupted[:, c]).mean(), clean[ans] - clean[c]
    assert r.low_score == pytest.approx(float(low), abs=1e-5)
    assert r.high_score == pytest.approx(float(high), abs=1e-5)
    assert r.scores[-1, -1] == pytest.approx(r.high_score, abs=1e-4)


def test_cli_trace_methods_and_metrics(tiny_dirs, tmp_path, capsys):
    from factlocate.cli import main

    out = tmp_path / "t"
    assert main(["trace", "--model", tiny_dirs["gpt2"], "--prompt", PROMPT, "--subject", SUBJECT, "--kind", "all",
                 "--samples", "2", "--window", "2", "--method", "atp+verify", "--top", "2", "--metric",
                 "logit_diff", "--corrupt", "str", "--out", str(out)]) == 0
    d = json.loads((out / "trace_mlp.json").read_text())
    assert d["run"]["method"] == "atp+verify" and d["run"]["metric"] == "logit_diff" and d["run"]["corrupt"] == "str"
    assert sum(map(sum, d["exact"])) >= 2 and d["estimates"] is not None
    assert "circled cells exact" in (out / "trace.html").read_text()
    assert main(["trace", "--model", tiny_dirs["gpt2"], "--prompt", PROMPT, "--subject", SUBJECT,
                 "--method", "atp", "--engine", "naive", "--out", str(out)]) == 2
    assert "batched engine" in capsys.readouterr().err


def test_fact_set_runs_compare(tiny_gpt2, tmp_path):
    """trace-facts with --method atp and --corrupt str, and the fidelity report against the exact run."""
    from test_trace_facts import _facts_the_model_knows

    from factlocate.tracing import RunSpec, fidelity
    from factlocate.tracing.facts import FactSetSpec, run_facts

    facts = _facts_the_model_knows(tiny_gpt2, n_right=3, n_wrong=0)
    runs = {"exact": RunSpec(samples=2, noise="0.5"), "atp": RunSpec(samples=2, noise="0.5", method="atp"),
            "str": RunSpec(samples=2, corrupt="str"),
            "verify": RunSpec(samples=2, noise="0.5", method="atp+verify", top=2)}
    for name, run in runs.items():
        kinds = ("mlp",) if name == "str" else ("hidden", "mlp")
        spec = FactSetSpec(model="tiny", facts="custom", kinds=kinds, window=2, run=run)
        run_facts(tiny_gpt2, tmp_path / name, spec, n=3, facts=facts, progress=False)
    md = fidelity.write(tmp_path / "exact", tmp_path / "atp", tmp_path / "fid", ("exact", "atp"), replay_top=2)
    result = json.loads((tmp_path / "fid" / "fidelity.json").read_text())
    assert result["n_facts"] == 3 and set(result["kinds"]) == {"hidden", "mlp"} and "Spearman" in md
    assert "replayed" in md and all(0 < r["replay_cells_verified"] <= 1 for r in result["kinds"].values())
    held = round(result["kinds"]["mlp"]["recall_top5_in_top10"] * 15)
    assert f"({held}/15)" in md  # shares print with their counts, so 14 of 15 never reads as 100%
    with pytest.raises(FactlocateError, match="--method atp"):
        fidelity.compare(tmp_path / "atp", tmp_path / "exact", replay_top=2)
    # The replay gives the live atp+verify run's cells and values (tools.atp_replay_check).
    from tools import atp_replay_check

    check = atp_replay_check.check(tmp_path / "exact", tmp_path / "atp", tmp_path / "verify", top=2)
    assert check["n_facts"] == 3
    for r in check["kinds"].values():
        assert r["facts_same_cells"] == 3 and r["largest_value_difference"] < 1e-6
    assert all(-1 <= r["spearman"] <= 1 for r in result["kinds"].values())
    fidelity.write(tmp_path / "exact", tmp_path / "str", tmp_path / "fid-str", ("noise", "str"))
    assert set(json.loads((tmp_path / "fid-str" / "fidelity.json").read_text())["kinds"]) == {"mlp"}
    assert (tmp_path / "fid-str" / "curves.html").exists()


def test_verification_rules_replayed_on_exact_grids(tiny_dirs, tmp_path):
    """tools.atp_bounds: with a perfect estimate the bounds verify just the top K; with a useless one, everything."""
    import numpy as np

    from tools import atp_bounds

    exact = np.random.RandomState(0).rand(6, 8)
    sq = np.ones_like(exact)
    perfect = atp_bounds.rules(exact, exact, sq, top=5, draws=4, seed=0)
    assert {k: int(m.sum()) for k, m in perfect.items()} == {"margin": 5, "taylor": 5, "conformal": 9, "rank": 10}
    top5 = set(np.argsort(-exact, axis=None)[:5].tolist())
    assert all(top5 <= set(np.flatnonzero(m).tolist()) for m in perfect.values())
    assert atp_bounds.rules(np.zeros_like(exact), exact, sq, top=5, draws=4, seed=0)["margin"].all()  # no information
    out = tmp_path / "bounds.json"
    assert atp_bounds.main(["--model", tiny_dirs["gpt2"], "--facts", "0", "--window", "2", "--out", str(out)]) == 0
    saved = json.loads(out.read_text())
    assert set(saved["totals"]) == {"margin", "taylor", "conformal", "rank"} and len(saved["rows"]) == 12


def test_spearman_ignores_the_rows_before_the_subject():
    """Before the subject both effects are zero by construction: their rounding must not move the correlation."""
    import numpy as np

    from factlocate.tracing.fidelity import _spearman

    rng = np.random.default_rng(0)
    exact = np.vstack([np.zeros((2, 6)), rng.random((3, 6))])
    before = [True, True, False, False, False]
    noisy = exact + np.vstack([rng.normal(0, 1e-8, (2, 6)), np.zeros((3, 6))])
    assert _spearman(exact, noisy, before) == 1.0
    assert _spearman(exact, noisy, [False] * 5) < 1.0


def test_the_budget_defaults_are_the_ones_chosen_on_dev_and_the_notes_say_so():
    """RunSpec's atp+budget defaults are docs/atp/budget.json's choice, and notes/atp.md's block is made from it."""
    from pathlib import Path

    from factlocate.io import marked_block, read_json
    from factlocate.tracing import RunSpec
    from tools import atp_budget

    saved = read_json(atp_budget.RESULT)
    chosen = saved["chosen_on_dev"]
    assert RunSpec().refine == chosen["refine"] and RunSpec().budget == chosen["budget"]
    text = Path(atp_budget.NOTES).read_text()
    start, end = marked_block(text, atp_budget.BEGIN, atp_budget.END)
    assert text[start:end] == atp_budget.notes_block(saved)
    # the choice is the cheapest passing one on dev, and test is not what it was chosen on
    facts = saved["facts"]
    assert all(not set(f["dev"]) & set(f["test"]) for f in facts.values())
    assert atp_budget.choose(saved["replayed"]) == chosen
