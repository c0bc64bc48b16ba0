"""Datasets, the evaluation runner (protocol, pre-edit cache, resume), reports, the sweep and the CLI."""
import dataclasses
import json
from dataclasses import dataclass

import pytest
import torch

from factlocate import arch, datasets
from factlocate.cli import main
from factlocate.datasets import download
from factlocate.deltas import WeightDelta
from factlocate.editors.base import Editor, EditResult
from factlocate.editors.base import HParams
from factlocate.errors import FactlocateError
from factlocate.evaluation import report, runner, sweep

NO_GEN = runner.EvalParams(generation=False)


@dataclass
class ToyHParams(HParams):
    EDITOR = "toy"

    layer: int = 1
    scale: float = 3.0
    fact_token: str = "subject_last"


def _toy_edit(model, requests, hparams, **options):
    """A rank-one MLP-output delta seeded by the case id (deterministic, editor-like)."""
    (req,) = requests
    g = torch.Generator().manual_seed(req.case_id * 31 + hparams.layer)
    u, v = torch.randn(model.cfg.d_mlp, 1, generator=g), torch.randn(1, model.cfg.d_model, generator=g)
    delta = WeightDelta(arch.mlp_out_name(model, hparams.layer), arch.to_storage(model, hparams.scale * u @ v, hparams.layer))
    return EditResult("toy", requests, [delta], {})


TOY = Editor("toy", ToyHParams, _toy_edit)


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("FACTLOCATE_OFFLINE", "1")


@pytest.fixture(scope="module")
def cf():
    return datasets.load("counterfact-sample")


# ---------------------------------------------------------------- datasets


def test_shipped_samples_load_with_valid_records(cf):
    assert cf.name == "counterfact-sample" and len(cf.records) == 400
    r = cf.records[0]
    assert r.case_id == 18 and r.rewrite_prompt == r.prompt.format(r.subject)
    assert len(r.paraphrase_prompts) == 2 and len(r.neighborhood_prompts) == 10 and len(r.generation_prompts) == 10
    z = datasets.load("zsre-sample")
    assert z.records[0].request().text == z.records[0].rewrite_prompt
    assert z.records[0].loc_prompt.endswith("?") and z.records[0].target_new == "1998"


def test_malformed_record_names_record_and_field(tmp_path, cf):
    raw = [json.loads(json.dumps({"case_id": 5, "requested_rewrite": {"prompt": "{} is in", "subject": "X",
            "target_new": {"str": "A"}, "target_true": {"str": ""}}, "paraphrase_prompts": [], "neighborhood_prompts": []}))]
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(raw))
    with pytest.raises(FactlocateError, match=r"record 0 \(case_id 5\).*requested_rewrite.target_true.str"):
        datasets.load(f"counterfact:{path}")
    path.write_text(json.dumps([{"src": "Who made it?", "subject": "Y", "answers": ["Z"], "rephrase": "r",
                                 "loc": "nq question: q", "loc_ans": "a"}]))
    with pytest.raises(FactlocateError, match=r"record 0.*'src' does not contain the subject 'Y'"):
        datasets.load(f"zsre:{path}")
    with pytest.raises(FactlocateError, match="does not exist"):
        datasets.load("counterfact:/no/such/file.json")


def test_easyedit_records_convert_to_the_same_type(tmp_path):
    path = tmp_path / "counterfact-edit.json"
    path.write_text(json.dumps([{"case_id": 0, "prompt": "The mother tongue of Danielle Darrieux is",
        "target_new": "English", "subject": "Danielle Darrieux", "ground_truth": "French",
        "rephrase_prompt": "Where Danielle Darrieux is from, people speak", "locality_prompt": "Michel Rocard speaks",
        "locality_ground_truth": "French"}]))
    (r,) = datasets.load(f"counterfact:{path}").records
    assert r.prompt == "The mother tongue of {} is" and r.target_true == "French"
    assert r.paraphrase_prompts == ("Where Danielle Darrieux is from, people speak",)
    assert r.neighborhood_prompts == ("Michel Rocard speaks",) and r.generation_prompts == ()


def test_selection_and_case_files(tmp_path, cf):
    assert [r.case_id for r in cf.select(2, 3)] == [r.case_id for r in cf.records[2:5]]
    ids = tmp_path / "ids.txt"
    ids.write_text("212\n18\n")
    assert [r.case_id for r in cf.select(case_ids=datasets.read_case_ids(ids))] == [212, 18]
    with pytest.raises(FactlocateError, match="not in"):
        cf.select(case_ids=[123456789])


def test_a_dataset_name_fails_offline_instead_of_switching(capsys):
    """`counterfact` is the canonical file or an error naming the sample, never the sample in its place."""
    with pytest.raises(FactlocateError, match="unreachable; pass a local path"):
        download.fetch("counterfact.json")
    for kind in ("counterfact", "zsre"):
        with pytest.raises(FactlocateError, match=f"--dataset {kind}-sample"):
            datasets.load(kind)
        with pytest.raises(FactlocateError, match="not cached here"):
            datasets.load(kind, allow_download=False)
        assert datasets.load(f"{kind}-sample").name == f"{kind}-sample"
    assert main(["eval", "--dataset", "counterfact", "--editor", "unedited", "--out", "unused"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "counterfact-sample" in err


# ---------------------------------------------------------------- runner


def _weights(model):
    return {n: p.detach().clone() for n, p in arch.hf_named_parameters(model)}


def test_protocol_restores_weights_and_caches_pre(tiny_gpt2, cf, tmp_path, monkeypatch):
    records = cf.select(0, 2)
    before = _weights(tiny_gpt2)
    folder = runner.run(tiny_gpt2, cf, records, "toy", tmp_path, NO_GEN, module=TOY, progress=False)
    assert all(torch.equal(before[n], p) for n, p in arch.hf_named_parameters(tiny_gpt2))
    case = json.loads((folder / "cases" / f"{records[0].case_id}.json").read_text())
    assert case["post"]["rewrite_prompts_probs"] != case["pre"]["rewrite_prompts_probs"]
    assert set(case["time"]) == {"edit", "post", "pre"}
    # A second editor reuses the cached pre metrics: no unedited evaluation runs again.
    calls = []
    real = runner.evaluate
    monkeypatch.setattr(runner, "evaluate", lambda *a, **k: calls.append(1) or real(*a, **k))
    runner.run(tiny_gpt2, cf, records, "toy", tmp_path, NO_GEN, overrides={"layer": 2}, module=TOY,
               folder_name="toy-l2", progress=False)
    assert len(calls) == len(records)  # post only
    other = json.loads((tmp_path / "toy-l2" / "cases" / f"{records[0].case_id}.json").read_text())
    assert other["pre"] == case["pre"]
    unedited = runner.run(tiny_gpt2, cf, records, "unedited", tmp_path, NO_GEN, progress=False)
    assert "post" not in json.loads((unedited / "cases" / f"{records[0].case_id}.json").read_text())


def test_different_parameters_in_one_folder_are_refused(tiny_gpt2, cf, tmp_path):
    runner.run(tiny_gpt2, cf, cf.select(0, 1), "toy", tmp_path, NO_GEN, module=TOY, progress=False)
    with pytest.raises(FactlocateError, match="different hparams"):
        runner.run(tiny_gpt2, cf, cf.select(0, 1), "toy", tmp_path, NO_GEN, overrides={"scale": 1.0},
                   module=TOY, progress=False)


def test_interrupted_run_resumes_to_the_same_summary(tiny_gpt2, cf, tmp_path):
    records = cf.select(0, 4)
    full = tmp_path / "full"
    runner.run(tiny_gpt2, cf, records, "toy", full, NO_GEN, module=TOY, progress=False)
    want = report.write_summary(full, figures=False)
    want_csv = (full / "summary.csv").read_text()

    # Ctrl-C during the third case: two case files are written, nothing half-written.
    def interrupted(model, requests, hparams, **options):
        if requests[0].case_id == records[2].case_id:
            raise KeyboardInterrupt
        return _toy_edit(model, requests, hparams, **options)

    crashed = tmp_path / "crashed"
    with pytest.raises(KeyboardInterrupt):
        runner.run(tiny_gpt2, cf, records, "toy", crashed, NO_GEN, progress=False,
                   module=Editor("toy", ToyHParams, interrupted))
    assert len(list((crashed / "toy" / "cases").glob("*.json"))) == 2
    assert not list((crashed / "toy" / "cases").glob(".*"))
    # The rerun finishes only the missing cases.
    calls = []
    counting = Editor("toy", ToyHParams, lambda *a, **k: calls.append(1) or _toy_edit(*a, **k))
    runner.run(tiny_gpt2, cf, records, "toy", crashed, NO_GEN, module=counting, progress=False)
    assert len(calls) == 2
    report.write_summary(crashed, figures=False)
    assert (crashed / "summary.csv").read_text() == want_csv

    # Deleting the summary and some case files, then rerunning, also gives the same table.
    for f in list((full / "toy" / "cases").glob("*.json"))[::2]:
        f.unlink()
    (full / "summary.csv").unlink()
    runner.run(tiny_gpt2, cf, records, "toy", full, NO_GEN, module=TOY, progress=False)
    assert report.write_summary(full, figures=False).split("| run |")[0] == want.split("| run |")[0]
    assert (full / "summary.csv").read_text() == want_csv


def test_report_puts_editors_side_by_side_with_unedited_row(tiny_gpt2, cf, tmp_path):
    records = cf.select(0, 2)
    runner.run(tiny_gpt2, cf, records, "toy", tmp_path, NO_GEN, module=TOY, progress=False)
    runner.run(tiny_gpt2, cf, records, "toy", tmp_path, NO_GEN, overrides={"layer": 2}, module=TOY,
               folder_name="toy-l2", progress=False)
    md = report.write_summary(tmp_path)
    table = md.split("| model | editor |")[1].split("\n\n")[0].splitlines()[2:]
    assert [line.split(" | ")[1] for line in table] == ["unedited", "toy", "toy-l2"]
    assert "| S | ES | EM | PS | PM | NS | NM | GE | RS |" in md
    assert "n/a" in table[0]  # GE and RS were not computed
    csv_text = (tmp_path / "summary.csv").read_text().splitlines()
    assert csv_text[0].startswith("model,editor,n,S,S_ci95,ES,ES_ci95")
    assert (tmp_path / "distributions.html").stat().st_size > 10_000


def test_generation_metrics_are_seeded_and_rs_is_unavailable(tiny_gpt2, cf, tmp_path):
    params = runner.EvalParams(generation=True, max_length=24)
    record = dataclasses.replace(cf.records[0], generation_prompts=cf.records[0].generation_prompts[4:7])
    a = runner.evaluate(tiny_gpt2, record, params)
    b = runner.evaluate(tiny_gpt2, record, params)
    assert a["text"] == b["text"] and len(a["text"]) == 3 and a["text"][0].startswith(record.generation_prompts[0])
    assert a["scores"]["GE"] > 0 and a["scores"]["RS"] is None


def test_zsre_run(tiny_gpt2, tmp_path):
    z = datasets.load("zsre-sample")
    runner.run(tiny_gpt2, z, z.select(0, 2), "toy", tmp_path, NO_GEN, module=TOY, progress=False)
    md = report.write_summary(tmp_path, figures=False)
    assert "| S | Efficacy | Paraphrase | Specificity |" in md


def test_sweep_fills_every_cell(tiny_gpt2, cf, tmp_path):
    md = sweep.run(tiny_gpt2, cf, cf.select(0, 1), "toy", [0, 2], ["subject_last", "last"], tmp_path,
                   module=TOY, progress=False)
    rows = [line for line in md.splitlines() if line.startswith("| last subject token")]
    assert len(rows) == 4 and all("n/a" not in r for r in rows)
    assert (tmp_path / "sweep.html").exists() and (tmp_path / "runs" / "toy-L2-last" / "cases").is_dir()
    with pytest.raises(FactlocateError, match="unknown token rules"):
        sweep.run(tiny_gpt2, cf, cf.select(0, 1), "toy", [0], ["middle"], tmp_path, module=TOY)


# ---------------------------------------------------------------- CLI


def test_cli_eval_unedited_and_errors(tiny_dirs, tmp_path, capsys):
    out = tmp_path / "cli"
    assert main(["eval", "--model", tiny_dirs["gpt2"], "--editor", "unedited", "--n", "2",
                 "--no-generation", "--no-figures", "--out", str(out)]) == 0
    assert "| unedited | 2 |" in (out / "summary.md").read_text()
    assert main(["eval", "--dataset", "nope", "--out", str(out)]) == 2
    assert "factlocate: error: unknown dataset" in capsys.readouterr().err
    assert main(["eval", "--editor", "nope", "--out", str(out)]) == 2
    assert main(["eval", "--editor", "unedited", "--set", "layer=3", "--out", str(out)]) == 2
    assert main(["eval", "--start", "5000", "--out", str(out)]) == 2
    assert "past the end" in capsys.readouterr().err
    assert main(["sweep", "--editor", "ft", "--out", str(tmp_path / "sweep")]) == 2
    assert "fact_token" in capsys.readouterr().err
    assert main(["eval-report", str(tmp_path / "empty")]) == 2


@pytest.mark.embedded
def test_bucketed_scoring_equals_one_forward_per_prompt_on_smollm(smollm, cf):
    """Length-bucketed batches (right padding, attention mask) give the single-prompt NLLs."""
    from factlocate import scoring
    from factlocate.metrics import counterfact as cf_metrics

    (record,) = cf.select(0, 1)
    nlls = cf_metrics.prompt_nlls(smollm, record)
    for group, prompts in cf_metrics.prompts_of(record).items():
        for row, prompt in zip(nlls[f"{group}_probs"], prompts):
            alone = scoring.target_nll(smollm, [prompt, prompt], [record.target_new, record.target_true])
            assert [row["target_new"], row["target_true"]] == pytest.approx(alone.tolist(), abs=2e-4)


def test_cli_sweep_known_dev_cases_other_tokens_every_kth_layer_on_fewer_cases(tiny_dirs, tmp_path):
    out = tmp_path / "sweep"
    assert main(["sweep", "--model", tiny_dirs["gpt2"], "--dataset", "counterfact-sample", "--split", "dev", "--known",
                 "--n", "2", "--layers", "0,1,2", "--tokens", "subject_last,last", "--other-every", "2",
                 "--other-cases", "1",
                 "--set", "v_num_grad_steps=2", "--set", "stats_tokens=1000",
                 "--set", "context_template_lengths=[[5, 1]]", "--out", str(out)]) == 0
    runs = sorted(p.name for p in (out / "runs").iterdir())
    assert runs == ["rome-L0-last", "rome-L0-subject_last", "rome-L1-subject_last", "rome-L2-last",
                    "rome-L2-subject_last"]
    grid, tokens, layers = sweep.load_grid(out)
    assert grid["S"][("last", 1)] is None and grid["S"][("subject_last", 1)] is not None
    cases = {name: len(list((out / "runs" / name / "cases").glob("*.json"))) for name in runs}
    assert cases == {"rome-L0-last": 1, "rome-L0-subject_last": 2, "rome-L1-subject_last": 2, "rome-L2-last": 1,
                     "rome-L2-subject_last": 2}
    assert "2 cases at the last subject token, the first 1 at the other tokens" in (out / "sweep.md").read_text()


def test_a_run_made_before_splits_were_named_is_reused_for_its_split(tiny_gpt2, cf, tmp_path):
    """Old runs recorded no split: naming `test` reuses one whose cases are all test cases, and refuses one that
    holds another case."""
    test = cf.split("test")
    runner.run(tiny_gpt2, cf, test[:2], "toy", tmp_path, NO_GEN, module=TOY, progress=False)  # no split recorded
    runner.run(tiny_gpt2, cf, test[:3], "toy", tmp_path, NO_GEN, module=TOY, progress=False, split="test")
    assert len(list((tmp_path / "toy" / "cases").glob("*.json"))) == 3
    other = tmp_path / "other"
    runner.run(tiny_gpt2, cf, cf.split("dev")[:1], "toy", other, NO_GEN, module=TOY, progress=False)
    with pytest.raises(FactlocateError, match="other parameters"):
        runner.run(tiny_gpt2, cf, test[:1], "toy", other, NO_GEN, module=TOY, progress=False, split="test")
