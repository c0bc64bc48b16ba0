"""Fact-set tracing: skipping wrong answers, resuming, buckets, summary, CLI and figures."""
from __future__ import annotations

import json

import numpy as np
import pytest

from factlocate.errors import FactlocateError
from factlocate.tracing import facts as facts_mod
from factlocate.tracing import GridSpec, RunSpec
from factlocate.datasets.known_facts import load_facts
from factlocate.tracing.facts import FactSetSpec, answer_matches, run_facts, summarize
from factlocate.tracing.result import TraceResult


pytestmark = pytest.mark.usefixtures("one_thread")


def _facts_the_model_knows(model, n_right=3, n_wrong=1) -> list[dict]:
    """Known facts whose attribute is rewritten to the tiny model's own answer (plus wrong ones)."""
    from factlocate import predict

    out = []
    for fact in load_facts()[:40]:
        top = predict(model, fact["prompt"], top_k=1)[0]["token"].strip()
        if len(out) < n_right and top:
            out.append({**fact, "attribute": top + "ish"})
        elif len(out) >= n_right and len(out) < n_right + n_wrong:
            out.append({**fact, "attribute": "\u2603 never"})
    return out


def test_answer_matches():
    assert answer_matches(" Paris", "Paris")
    assert answer_matches(" Ant", "Antarctica")
    assert not answer_matches(" London", "Paris")
    assert not answer_matches("  ", "Paris")


def test_load_facts_validates(tmp_path):
    assert len(load_facts()) == 1209
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"known_id": 0, "subject": "X", "prompt": "X is"}]))
    with pytest.raises(FactlocateError, match="fact 0 lacks attribute"):
        load_facts(bad)
    with pytest.raises(FactlocateError, match="does not exist"):
        load_facts(tmp_path / "missing.json")


def test_run_facts_skips_resumes_and_summarises(tiny_gpt2, tmp_path, monkeypatch):
    facts = _facts_the_model_knows(tiny_gpt2)
    params = FactSetSpec(model="tiny-gpt2", facts="custom", window=2, sever="mlp", run=RunSpec(samples=2, noise="0.5"))
    summary = run_facts(tiny_gpt2, tmp_path, params, facts=facts, progress=False)
    assert summary["n_traced"] == 3 and summary["n_skipped"] == 1
    hidden = summary["kinds"]["hidden"]
    assert set(summary["kinds"]) == {"hidden", "mlp", "attn"}
    assert hidden["ate"] == pytest.approx(hidden["high_score"] - hidden["low_score"])
    assert len(hidden["buckets"]["last_subject"]["aie"]) == 4
    assert list(summary["severed"]["by_kind"]) == ["mlp"]
    csv = (tmp_path / "summary.csv").read_text().splitlines()
    assert csv[0] == "kind,bucket,layer,aie,ci95,mean_score,n_facts"
    assert any(line.startswith("hidden_severed_mlp,last_subject,0,") for line in csv)
    # A rerun resumes: no fact is traced again.
    monkeypatch.setattr(facts_mod, "trace_fact", lambda *a, **k: pytest.fail("traced again"))
    again = run_facts(tiny_gpt2, tmp_path, params, facts=facts, progress=False)
    assert again["n_traced"] == 3
    # Other parameters in the same folder are refused.
    with pytest.raises(FactlocateError, match="other parameters"):
        run_facts(tiny_gpt2, tmp_path, FactSetSpec(model="tiny-gpt2", facts="custom", run=RunSpec(samples=3)),
                  facts=facts)


def test_buckets_follow_the_original():
    scores = np.arange(8 * 2, dtype=float).reshape(8, 2)
    r = TraceResult(scores, 0.0, 1.0, " x", 1, list(range(8)), ["t"] * 8, (1, 4), list(range(8)), "p", "s", "m",
                    GridSpec("hidden"), RunSpec(samples=2))
    rows = facts_mod._bucket_rows(r)
    assert rows["first_subject"].tolist() == [scores[1].tolist()]
    assert rows["middle_subject"].tolist() == scores[2:3].tolist()
    assert rows["last_subject"].tolist() == [scores[3].tolist()]
    assert rows["first_subsequent"].tolist() == [scores[4].tolist()]
    assert rows["further"].tolist() == scores[5:7].tolist()
    assert rows["last"].tolist() == [scores[7].tolist()]


def test_cli_trace_writes_json_and_html(tiny_dirs, tmp_path, capsys):
    from factlocate.cli import main

    out = tmp_path / "trace"
    code = main(["trace", "--model", tiny_dirs["gpt2"], "--prompt", "The capital of Roman Republic is",
                 "--subject", "Roman Republic", "--kind", "all", "--samples", "2", "--window", "2",
                 "--noise", "0.5", "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert f"figure: {out / 'trace.html'}" in printed
    for kind in ("hidden", "mlp", "attn"):
        d = json.loads((out / f"trace_{kind}.json").read_text())
        for key in ("scores", "low_score", "high_score", "answer", "input_tokens", "subject_range", "noise",
                    "model", "grid", "run"):
            assert key in d, key
        assert d["grid"]["kind"] == kind and len(d["scores"]) == len(d["input_tokens"])
        assert d["grid"]["window"] == 2 and d["run"]["samples"] == 2 and d["noise"]["level"] == 0.5
    assert (out / "trace.html").stat().st_size > 10_000


def test_cli_errors_exit_2(tiny_dirs, tmp_path, capsys):
    from factlocate.cli import main

    base = ["trace", "--model", tiny_dirs["gpt2"], "--prompt", "The capital of Roman Republic is",
            "--subject", "Roman Republic", "--out", str(tmp_path)]
    assert main(base + ["--noise", "zz"]) == 2
    assert "factlocate: error: cannot parse noise spec" in capsys.readouterr().err
    assert main(base + ["--window", "40"]) == 2
    assert "larger than the model" in capsys.readouterr().err
    bad = tmp_path / "facts.json"
    bad.write_text(json.dumps([{"subject": "X"}]))
    assert main(["trace-facts", "--facts", str(bad), "--out", str(tmp_path / "f")]) == 2
    assert "lacks" in capsys.readouterr().err


def test_summary_figures(tiny_gpt2, tmp_path):
    from factlocate import plots

    facts = _facts_the_model_knows(tiny_gpt2, n_right=2, n_wrong=0)
    params = FactSetSpec(model="tiny-gpt2", facts="custom", window=2, sever="mlp,attn", kinds=("hidden", "mlp"),
                         run=RunSpec(samples=2, noise="0.5"))
    summary = run_facts(tiny_gpt2, tmp_path, params, facts=facts, progress=False)
    figs = [plots.average_heatmaps(summary), plots.average_lines(summary), plots.severed_bars(summary)]
    assert all(len(f.data) for f in figs)
    assert [bar.name for bar in figs[2].data] == ["effect of single state", "with mlp severed", "with attn severed"]
    path = plots.save_html(figs, tmp_path / "summary.html")
    assert path.read_text().count("plotly") > 3
    assert summarize(tmp_path)["n_traced"] == 2


def test_runs_saved_with_one_severed_kind_still_resume(tiny_gpt2, tmp_path):
    """Before `sever` took several kinds, params.json held a string and a case held its one severed result."""
    facts = _facts_the_model_knows(tiny_gpt2, n_right=2, n_wrong=0)
    spec = FactSetSpec(model="tiny-gpt2", facts="custom", window=2, sever="mlp", kinds=("hidden",),
                       run=RunSpec(samples=2, noise="0.5"))
    new = run_facts(tiny_gpt2, tmp_path, spec, facts=facts, progress=False)
    params = json.loads((tmp_path / "params.json").read_text())
    params["spec"]["sever"] = "mlp"
    (tmp_path / "params.json").write_text(json.dumps(params))
    for path in (tmp_path / "cases").glob("*.json"):
        case = json.loads(path.read_text())
        case["severed"] = case["severed"]["mlp"]
        path.write_text(json.dumps(case))
    old = run_facts(tiny_gpt2, tmp_path, spec, facts=facts, progress=False)
    assert list(old["severed"]["by_kind"]) == ["mlp"]
    np.testing.assert_allclose(old["severed"]["by_kind"]["mlp"]["aie"], new["severed"]["by_kind"]["mlp"]["aie"])


def test_layer_range_from_a_fact_set_equals_tracing_the_same_facts(tiny_gpt2, tmp_path, capsys):
    """`layer-range --from DIR` reads MEMIT's gap and AttnEdit's curve off a fact-set run without tracing."""
    from factlocate.cli import main
    from factlocate.tracing import layer_range

    facts = _facts_the_model_knows(tiny_gpt2, n_right=2, n_wrong=1)
    spec = FactSetSpec(model="tiny-gpt2", facts="custom", window=3, sever="mlp", kinds=("hidden", "attn"),
                       run=RunSpec(samples=2, noise="0.5"))
    run_facts(tiny_gpt2, tmp_path, spec, facts=facts, progress=False)
    gap, effect, n = layer_range.from_fact_set(tmp_path)
    known = [(f["prompt"], f["subject"]) for f in facts[:2]]
    np.testing.assert_allclose(gap, layer_range.severed_gap(tiny_gpt2, known, samples=2, noise="0.5", progress=False),
                               atol=1e-6)
    np.testing.assert_allclose(effect, layer_range.attention_effect(tiny_gpt2, known, samples=2, noise="0.5",
                                                                    progress=False, window=3), atol=1e-6)
    assert n == 2
    assert main(["layer-range", "--from", str(tmp_path), "--width", "2", "--attention"]) == 0
    assert f"memit layers: {layer_range.best_window(gap, 2)}" in capsys.readouterr().out
    assert main(["layer-range", "--from", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err
