"""Localisation against editing (Hase et al.): the regression, the study on a tiny model, and where-to-edit."""
import json

import numpy as np
import pytest
import yaml

from factlocate import datasets
from factlocate.cli import main
from factlocate.errors import FactlocateError
from factlocate.evaluation import localisation, where
from factlocate.io import marked_block
from factlocate.metrics import localisation as loc

TINY = {"stats_tokens": 2000, "v_num_grad_steps": 3}


def test_regression_recovers_a_planted_trace_effect():
    """y = layer mean + 2 x effect + noise: the trace adds R² over the layer; with no link it adds almost none."""
    rng = np.random.default_rng(0)
    layer = np.repeat(np.arange(6), 40)
    effect = rng.normal(size=layer.size)
    base = np.array([0.1, 0.5, 0.9, 0.4, 0.2, 0.0])[layer]
    planted = base + 2 * effect + rng.normal(scale=0.5, size=layer.size)
    fit = loc.r2_table(planted, effect, layer)
    assert fit["added"] > 0.7 and fit["both"] > fit["layer"]
    unrelated = base + rng.normal(scale=0.5, size=layer.size)
    assert loc.r2_table(unrelated, effect, layer)["added"] < 0.02
    # the layer alone explains a layer-only outcome exactly
    assert loc.r2_table(base, effect, layer)["layer"] == pytest.approx(1.0)


def test_bootstrap_resamples_facts_and_is_seeded():
    groups = [[1.0, 2.0], [3.0], [5.0, 5.0]]
    stat = lambda gs: float(np.mean([x for g in gs for x in g]))  # noqa: E731
    a = loc.bootstrap(groups, stat, n=200, seed=3)
    assert a == loc.bootstrap(groups, stat, n=200, seed=3) and a[0] <= a[1]
    with pytest.raises(FactlocateError, match="two facts"):
        loc.bootstrap(groups[:1], stat)


def test_rewrite_score_and_best_layer():
    import math

    pre = [{"target_new": -math.log(0.2), "target_true": 1.0}]
    post = [{"target_new": -math.log(0.6), "target_true": 1.0}]
    assert where._score(pre, post) == pytest.approx(0.5)  # (0.6 - 0.2) / (1 - 0.2)
    per_layer = {0: {"S": 0.5, "rewrite": 0.2}, 3: {"S": 0.5, "rewrite": 0.9}, 5: {"S": 0.1, "rewrite": 1.0}}
    assert where.best_layer_of_case(per_layer) == 3


@pytest.fixture(scope="module")
def study(tiny_dirs, tmp_path_factory, one_thread):
    from factlocate import load_model

    out = tmp_path_factory.mktemp("where")
    model = load_model(tiny_dirs["gpt2"])
    ds = datasets.load("counterfact-sample")
    spec = localisation.StudySpec(model=tiny_dirs["gpt2"], layers=(0, 2), n=3, samples=2)
    localisation.collect(model, ds, ds.split("dev"), spec, out, progress=False, split="dev", overrides=TINY)
    return out


def test_study_traces_and_edits_every_case_at_every_layer(study):
    table = where.load_table(study)
    assert table["layers"] == [0, 2] and len(table["cases"]) == 3 and len(table["rows"]) == 6
    knows = json.loads((study / "traces" / "knows.json").read_text())
    chosen = [k["case_id"] for k in knows if k["prefers_true"]][:3]
    assert sorted(chosen) == sorted(table["cases"])  # the first three known dev cases
    dev = set(datasets.load("counterfact-sample").split("dev")[i].case_id for i in range(169))
    assert set(table["cases"]) <= dev
    md = where.analyse(study, n_boot=20)
    assert "added by the trace" in md and (study / "scatter.html").exists()
    a = json.loads((study / "analysis.json").read_text())
    assert a["dataset"]["split"] == "dev" and len(a["regressions"]) == 12


def test_rules_fixed_on_dev_are_scored_on_test_facts(study, tiny_dirs, tmp_path, capsys):
    where.analyse(study, n_boot=20)
    out = tmp_path / "test-study"
    args = ["localisation-vs-editing", "--model", tiny_dirs["gpt2"], "--split", "test", "--n", "3", "--layers",
            "0,2", "--samples", "2", "--out", str(out), *[f"--set={k}={v}" for k, v in TINY.items()]]
    assert main(args + ["--validate", str(study)]) == 0
    v = json.loads((out / "validation.json").read_text())
    test_ids = {r.case_id for r in datasets.load("counterfact-sample").split("test")}
    assert set(v["test_cases"]) <= test_ids and not set(v["test_cases"]) & set(v["dev_cases"])
    rules = {r["rule"]: r for r in v["rules"]}
    dev_choice = json.loads((study / "analysis.json").read_text())["choice"]["sweep"]
    assert rules["sweep (dev)"]["layer"] == dev_choice and "each fact's traced peak" in rules
    assert all(r["ratio"] <= 1 + 1e-9 and r["oracle_S"] >= r["S"] - 1e-9 for r in v["rules"])  # the oracle bounds
    assert main(args[:4] + ["dev"] + args[5:] + ["--validate", str(study)]) != 0
    assert "give --split test" in capsys.readouterr().err
    analysis = json.loads((study / "analysis.json").read_text())
    block = where.notes_block({"tiny": analysis}, {"tiny": v})
    sweep = rules["sweep (dev)"]
    assert (f"| tiny | sweep (dev) | {len(v['test_cases'])} | {sweep['layer']} | {sweep['S']:.1f} | "
            f"{sweep['oracle_S']:.1f} | {sweep['ratio']:.3f} [") in block
    assert "scored on held-out test facts" not in where.notes_block({"tiny": analysis})


def test_where_to_edit_writes_a_config_that_edit_uses(study, tiny_dirs, tmp_path):
    config = tmp_path / "rome-where.yaml"
    rc = main(["where-to-edit", "--model", tiny_dirs["gpt2"], "--n", "3", "--layers", "0,2", "--samples", "2",
               "--out", str(study), "--strategy", "sweep", "--config", str(config),
               *[f"--set={k}={v}" for k, v in TINY.items()]])
    assert rc == 0
    chosen = json.loads((study / "analysis.json").read_text())["choice"]["sweep"]
    values = yaml.safe_load(config.read_text())
    assert values["layer"] == chosen and values["stats_tokens"] == 2000
    evidence = json.loads(config.with_suffix(".evidence.json").read_text())
    assert evidence["evidence_sha256"] == where.digest(study / "analysis.json")
    out = tmp_path / "edit.json"
    assert main(["edit", "--model", tiny_dirs["gpt2"], "--hparams", str(config), "--prompt", "{} is located in",
                 "--subject", "The Eiffel Tower", "--target", "Rome", "--out", str(out)]) == 0
    assert json.loads(out.read_text())["hparams"]["layer"] == chosen


def test_where_to_edit_by_trace_needs_no_edits(tiny_dirs, tmp_path):
    config = tmp_path / "c.yaml"
    out = tmp_path / "study"
    assert main(["where-to-edit", "--model", tiny_dirs["gpt2"], "--n", "2", "--samples", "2", "--out", str(out),
                 "--strategy", "trace", "--config", str(config), "--set", "stats_tokens=2000"]) == 0
    assert not (out / "sweep").exists()
    choice = json.loads((out / "trace-choice.json").read_text())
    assert yaml.safe_load(config.read_text())["layer"] == choice["choice"]["trace"]


def test_trace_of_a_given_answer(tiny_gpt2):
    """`answer=` traces that text's first token; the clean top-1's text gives the default trace exactly."""
    from factlocate.tracing import trace

    prompt, subject = "The Eiffel Tower is located in", "The Eiffel Tower"
    default = trace(tiny_gpt2, prompt, subject, kind="mlp", window=2, samples=2, token_range="subject_last")
    same = trace(tiny_gpt2, prompt, subject, kind="mlp", window=2, samples=2, token_range="subject_last",
                 answer=default.answer)
    assert np.array_equal(default.scores, same.scores) and same.high_score == pytest.approx(default.high_score)
    other = trace(tiny_gpt2, prompt, subject, kind="mlp", window=2, samples=2, token_range="subject_last",
                  answer="Paris")
    assert other.answer_id != default.answer_id or other.answer.strip() == "Paris"


def test_notes_results_are_the_studies_data():
    """notes/where-to-edit.md's results block is exactly what docs/where/*/analysis.json give."""
    import os
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    sys.path.insert(0, str(root))
    from tools import where_notes

    here = os.getcwd()
    os.chdir(root)
    try:
        text = Path("notes/where-to-edit.md").read_text(encoding="utf-8")
        start, end = marked_block(text, where.NOTES_BEGIN, where.NOTES_END)
        assert text[start:end] == where_notes.block()
    finally:
        os.chdir(here)
    assert where.hase_verdict((0.0, 0.02)) == "holds" and where.hase_verdict((0.06, 0.2)) == "does not hold"
    assert where.hase_verdict((0.01, 0.3)) == "inconclusive"


def test_where_to_edit_refuses_to_choose_on_test(tmp_path, capsys):
    assert main(["where-to-edit", "--split", "test", "--out", str(tmp_path), "--config", str(tmp_path / "c.yaml")]) == 2
    assert "chooses on dev only" in capsys.readouterr().err


def test_a_range_editor_is_studied_centred_on_each_layer(tiny_dirs, tmp_path, one_thread):
    """MEMIT in the study: `width` layers centred on each swept layer (kept inside the model), the key statistics
    of every layer it writes; the range recommended from it is centred the same way."""
    from factlocate import load_model
    from factlocate.tracing.layer_range import centred

    assert centred(0, 3, 4) == [0, 1, 2] and centred(3, 3, 4) == [1, 2, 3] and centred(2, 1, 4) == [2]
    model = load_model(tiny_dirs["gpt2"])
    ds = datasets.load("counterfact-sample")
    spec = localisation.StudySpec(model=tiny_dirs["gpt2"], layers=(0, 2), n=2, editor="memit", samples=2, width=3)
    small = {"stats_tokens": 2000, "v_num_grad_steps": 2}
    localisation.collect(model, ds, ds.split("dev"), spec, tmp_path, progress=False, split="dev", overrides=small)
    for layer, expected in ((0, [0, 1, 2]), (2, [1, 2, 3])):
        params = json.loads((tmp_path / "sweep" / "runs" / f"memit-L{layer}-subject_last" / "params.json").read_text())
        assert params["hparams"]["layers"] == expected
    assert len(where.load_table(tmp_path)["rows"]) == 4
