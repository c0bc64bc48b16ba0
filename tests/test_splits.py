"""Named, disjoint dev/test splits, and the rule that no test text is tuned or trained on."""
from __future__ import annotations

import json
from importlib import resources

import pytest

from factlocate import datasets
from factlocate.cli import main
from factlocate.datasets import leakage, splits
from factlocate.errors import FactlocateError


@pytest.fixture(params=["counterfact-sample", "zsre-sample"])
def sample(request):
    return datasets.load(request.param)


def test_shipped_splits_are_disjoint_in_text_and_reproducible(sample):
    dev, test = sample.split("dev"), sample.split("test")
    assert len(test) == 100 and len(dev) >= 60
    assert [r.case_id for r in test] == [r.case_id for r in sample.records[:100]]  # the cases the tables report
    assert not {r.case_id for r in dev} & {r.case_id for r in test}
    leakage.check_disjoint(test, [leakage.texts(r) for r in dev], "dev")  # no dev record holds a test text
    shipped = json.loads(splits.path_for(sample.name).read_text())
    assert splits.make(sample) == shipped  # `python -m tools.make_splits` remakes the shipped file


def test_a_split_of_other_records_is_refused(sample):
    other = datasets.Dataset(sample.kind, sample.name, sample.source, "0" * 16, sample.records)
    with pytest.raises(FactlocateError, match="would name other records"):
        other.split("dev")
    with pytest.raises(FactlocateError, match="unknown split"):
        sample.split("train")
    renamed = datasets.Dataset(sample.kind, "my-file", sample.source, sample.digest, sample.records)
    assert renamed.split("dev") == sample.split("dev")  # the same file under another name: found by its digest
    unknown = datasets.Dataset(sample.kind, "my-file", sample.source, "1" * 16, sample.records)
    with pytest.raises(FactlocateError, match="no dev/test splits are shipped for dataset 'my-file'"):
        unknown.split("dev")


def test_check_disjoint_names_the_shared_text():
    test = datasets.load("counterfact-sample").split("test")
    neighbour = test[0].neighborhood_prompts[3]
    clean = [{"tuning prompt"}, {"another"}]
    leakage.check_disjoint(test, clean, "tuning data")
    with pytest.raises(FactlocateError, match=r"1 item\(s\) share text with the test split.*item 1"):
        leakage.check_disjoint(test, clean[:1] + [{"x", neighbour}], "tuning data")


def test_training_data_never_holds_a_test_text():
    from factlocate.editors.hypernetworks import hypertrain

    test = datasets.load("counterfact-sample").split("test")
    shipped = json.loads(resources.files("factlocate.data").joinpath("counterfact_sample.json").read_text())
    other_id = max(r["case_id"] for r in shipped) + 100000
    row = {"case_id": other_id, "prompt": "{} is located in", "subject": "Zzyzx", "target_new": "Paris",
           "rephrase_prompt": "Where is Zzyzx?", "locality_prompt": "x", "locality_ground_truth": "y"}
    leaking = dict(row, case_id=other_id + 1, locality_prompt=test[5].neighborhood_prompts[0])  # a test neighbour
    items, dropped = hypertrain._from_cf([row, leaking])
    assert dropped == 1 and [x.locality for x in items] == ["x"]
    zrow = {"subject": "Zzyzx", "src": "What is Zzyzx?", "answers": ["a"], "rephrase": "Zzyzx is?",
            "loc": datasets.load("zsre-sample").split("test")[0].loc_prompt.rstrip("?"), "loc_ans": "b"}
    assert hypertrain._from_zsre([zrow])[1] == 1  # its locality question is a test record's


def test_eval_split_runs_the_split_and_records_it(tiny_dirs, tmp_path, monkeypatch):
    monkeypatch.setenv("FACTLOCATE_OFFLINE", "1")
    out = tmp_path / "e"
    assert main(["eval", "--model", tiny_dirs["gpt2"], "--editor", "unedited", "--dataset", "counterfact-sample",
                 "--split", "dev", "--n", "2", "--no-generation", "--no-figures", "--out", str(out)]) == 0
    params = json.loads((out / "unedited" / "params.json").read_text())
    assert params["dataset"]["split"] == "dev" and params["dataset"]["name"] == "counterfact-sample"
    dev = datasets.load("counterfact-sample").split("dev")
    assert sorted(int(p.stem) for p in (out / "unedited" / "cases").glob("*.json")) == sorted(
        r.case_id for r in dev[:2])


def test_key_statistics_and_perplexity_read_disjoint_text(tiny_gpt2):
    from factlocate.datasets.corpus import DEFAULT_CORPUS, PERPLEXITY_CORPUS, corpus_texts
    from factlocate.editors.keyvalue import key_stats
    from factlocate.metrics.perplexity import wikitext_slice

    c0, held = corpus_texts(DEFAULT_CORPUS), corpus_texts(PERPLEXITY_CORPUS)
    assert len(c0) > 1000 and len(held) > 100 and not set(c0) & set(held)
    rows = wikitext_slice(tiny_gpt2, 4096)
    decoded = {tiny_gpt2.tokenizer.decode(r) for r in rows}
    assert sum(len(r) - 1 for r in rows) >= 4096
    assert all(any(d.strip() and held_text.startswith(d.strip()[:40]) for held_text in held) for d in decoded)
    with pytest.raises(FactlocateError, match="perplexity is measured on"):
        key_stats.key_stats(tiny_gpt2, 1, PERPLEXITY_CORPUS, tokens_budget=100, progress=False)


SHARED = __import__("pathlib").Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.mark.skipif(not (SHARED / "counterfact_portability_gpt4.json").is_file(), reason="needs ../shared/data")
def test_the_portability_split_keeps_test_out_of_training_and_tuning():
    """CounterFact portability's own split: every test record has a one-hop question and shares no text with
    the MEND/KE training file or counterfact-sample's dev split; the shipped file is what the tool makes."""
    from factlocate.metrics import portability
    from tools import make_splits

    path, training = SHARED / "counterfact_portability_gpt4.json", SHARED / "counterfact-train.json"
    ds = datasets.load(f"counterfact:{path}", allow_download=False)
    test, dev = ds.split("test"), ds.split("dev")
    hops = portability.one_hop(json.loads(path.read_text()), "counterfact")
    assert len(test) == 100 and all(r.case_id in hops for r in test) and len(dev) >= 60
    trained = [leakage.example_texts(r) for r in json.loads(training.read_text())]
    leakage.check_disjoint(test, trained, "training data")
    leakage.check_disjoint(test, [leakage.texts(r) for r in datasets.load("counterfact-sample").split("dev")], "dev")
    leakage.check_disjoint(test, [leakage.texts(r) for r in dev], "dev")
    assert make_splits.portability_split(str(path), str(training), 100) == json.loads(
        splits.path_for(ds.name).read_text())
