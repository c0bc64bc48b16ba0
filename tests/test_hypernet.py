"""MEND and KE on tiny models: training lowers the loss, resumes exactly, edits raise p(target), revert is
bit-exact, and a checkpoint for another model is refused."""
from __future__ import annotations

import json

import pytest
import torch

from factlocate import arch, editors
from factlocate.editors.hypernetworks import hypernet, hypertrain
from factlocate.editors.base import EditRequest
from factlocate.errors import FactlocateError

pytestmark = pytest.mark.usefixtures("one_thread")

RECORDS = [
    ("The Eiffel Tower is located in", "Rome", "Where is the Eiffel Tower? It is in", "Big Ben is located in"),
    ("LeBron James plays the sport of", "football", "LeBron James is a professional", "Serena Williams plays"),
    ("The mother tongue of Danielle Darrieux is", "English", "Danielle Darrieux speaks", "Paris is the capital of"),
    ("Toko Yasuda plays the", "piano", "Toko Yasuda is good at the", "John Lennon plays the"),
    ("BBC One is owned by", "Sega", "BBC One belongs to", "BBC Radio is owned by"),
    ("Apple A5 was created by", "Google", "Apple A5 is made by", "Apple A6 was created by"),
]
SMALL = {"mend": dict(rank=16, lr=1e-3, lr_lr=1e-3, edit_lr=1e-2, batch=2, val_every=3, val_size=2,
                      checkpoint_every=2, patience=50),
         "ke": dict(hidden=16, lstm_hidden=16, condition=32, lr=1e-3, batch=2, val_every=3, val_size=2,
                    checkpoint_every=2, patience=50)}


@pytest.fixture
def cf_file(tmp_path):
    rows = [{"case_id": 100000 + i, "prompt": p, "target_new": t, "subject": p.split(" ")[0], "ground_truth": "x",
             "rephrase_prompt": r, "locality_prompt": loc, "locality_ground_truth": "x"}
            for i, (p, t, r, loc) in enumerate(RECORDS * 4)]
    path = tmp_path / "cf.json"
    path.write_text(json.dumps(rows))
    return path


def _hp(editor, **kw):
    return editors.get(editor).HParams(**{**SMALL[editor], "data": "cf", **kw})


def _mean_loss(model, editor, net, examples):
    module = editors.get(editor)
    inners = hypernet.inner_params(model, 3)
    with torch.no_grad():
        return sum(float(hypertrain.meta_loss(model, inners, net, module.updates, ex, 0.1, 1.0)["loss"])
                   for ex in examples) / len(examples)


@pytest.mark.parametrize("editor", ["mend", "ke"])
def test_training_lowers_the_loss_and_editing_raises_the_target(tiny_gpt2, cf_file, tmp_path, editor):
    module = editors.get(editor)
    hp = _hp(editor, steps=12)
    out = tmp_path / "ckpt"
    log = module.train(tiny_gpt2, hp, f"cf:{cf_file}", out, progress=False)
    assert log["step"] == 12 and (out / "best.safetensors").exists() and (out / "last.safetensors").exists()
    first, last = log["train"][0]["loss"], log["train"][-1]["loss"]
    assert last < first, (first, last)
    assert log["val"] and all(v["loss"] > 0 for v in log["val"])
    # Edit with the trained network; the weights come back bit for bit.
    variant = editors.get(f"{editor}-cf")
    hparams = variant.HParams(**{**SMALL[editor], "data": "cf", "checkpoint": str(out / "best.safetensors")})
    request = EditRequest("{} is located in the city of", "The Eiffel Tower", "Rome", target_true="Paris")
    names = [i.name for i in hypernet.inner_params(tiny_gpt2, 3)]
    before = {n: arch.hf_parameter(tiny_gpt2, n).detach().clone() for n in names}
    result = variant.compute_edit(tiny_gpt2, [request], hparams)
    assert all(torch.equal(arch.hf_parameter(tiny_gpt2, n), w) for n, w in before.items())
    assert result.probs_after[0]["new"] > result.probs_before[0]["new"]
    assert sorted(d.name for d in result.deltas) == sorted(names)
    result.apply(tiny_gpt2)
    result.revert(tiny_gpt2)
    assert all(torch.equal(arch.hf_parameter(tiny_gpt2, n), w) for n, w in before.items())
    # The training curves of the run, as `factlocate train-report` draws them.
    from factlocate.cli import main

    assert main(["train-report", str(out), "--out", str(tmp_path / "curves.html")]) == 0
    assert "validation loss" in (tmp_path / "curves.html").read_text()


@pytest.mark.parametrize("editor", ["mend", "ke"])
def test_killed_training_resumes_to_the_same_weights(tiny_gpt2, cf_file, tmp_path, monkeypatch, editor):
    module = editors.get(editor)
    hp = _hp(editor, steps=6)
    module.train(tiny_gpt2, hp, f"cf:{cf_file}", tmp_path / "whole", progress=False)
    real, calls = hypertrain.meta_loss, {"n": 0}

    def dies_after_some(*a, **k):
        calls["n"] += 1
        if calls["n"] == 2 * hp.batch * 3 + 1:  # partway through step 4 (three steps and a validation done)
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(hypertrain, "meta_loss", dies_after_some)
    with pytest.raises(KeyboardInterrupt):
        module.train(tiny_gpt2, hp, f"cf:{cf_file}", tmp_path / "resumed", progress=False)
    monkeypatch.setattr(hypertrain, "meta_loss", real)
    module.train(tiny_gpt2, hp, f"cf:{cf_file}", tmp_path / "resumed", progress=False)
    a, _ = hypertrain.read(tmp_path / "whole" / "last.safetensors")
    b, meta = hypertrain.read(tmp_path / "resumed" / "last.safetensors")
    assert meta["log"]["step"] == 6 and sorted(a) == sorted(b)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert (tmp_path / "resumed" / "done.json").exists()
    # the folder is a run folder: other settings do not resume someone else's optimiser
    with pytest.raises(FactlocateError, match="other parameters"):
        module.train(tiny_gpt2, _hp(editor, steps=6, lr=0.5), f"cf:{cf_file}", tmp_path / "resumed", progress=False)


def test_checkpoint_for_another_model_is_refused_and_missing_one_says_how_to_train(
        tiny_gpt2, tiny_dirs, cf_file, tmp_path):
    from factlocate import load_model

    editors.get("mend").train(tiny_gpt2, _hp("mend", steps=2), f"cf:{cf_file}", tmp_path, progress=False)
    llama = load_model(tiny_dirs["llama"])
    variant = editors.get("mend-cf")
    request = EditRequest("{} is in", "Paris", "Rome")
    with pytest.raises(FactlocateError, match="was trained for"):
        variant.compute_edit(llama, [request], variant.HParams(checkpoint=str(tmp_path / "best.safetensors")))
    with pytest.raises(FactlocateError, match="train-editor --editor mend"):
        variant.compute_edit(llama, [request], variant.HParams(checkpoint=str(tmp_path / "none.safetensors")))


def test_evaluated_records_are_never_trained_on(tiny_gpt2, tmp_path):
    from importlib import resources

    shipped = json.loads(resources.files("factlocate.data").joinpath("counterfact_sample.json").read_text())
    r = shipped[0]["requested_rewrite"]
    row = {"case_id": shipped[0]["case_id"], "prompt": r["prompt"].format(r["subject"]), "target_new": "x",
           "subject": r["subject"], "ground_truth": "y", "rephrase_prompt": "a", "locality_prompt": "b",
           "locality_ground_truth": "y"}
    path = tmp_path / "cf.json"
    # dropped: the evaluated case (by id), and another case holding its rewrite prompt (by text); kept: a clean one
    clean = {**row, "case_id": 999998, "prompt": "Zzyzx is located in", "subject": "Zzyzx"}
    path.write_text(json.dumps([row, {**row, "case_id": 999999}, clean]))
    train, val, notes = hypertrain.examples(tiny_gpt2, f"cf:{path}", tmp_path / "out", 0)
    assert notes["dropped_evaluated"] == 2 and len(train) + len(val) == 1


def test_wikitext_examples_are_cached_per_model_and_shared(tiny_gpt2, tmp_path, monkeypatch):
    from factlocate.editors.hypernetworks import hypertrain

    text = "\n".join(" ".join(f"word{i}x{j}" for j in range(45)) for i in range(8))
    path = tmp_path / "wiki.txt"
    path.write_text(text)
    first = hypertrain._wikitext(tiny_gpt2, path, 3, seed=0)
    assert len(first) == 3 and all(ex.prompt and ex.target for ex in first)
    monkeypatch.setattr(hypertrain, "_sample_wikitext", lambda *a: pytest.fail("sampled again"))
    assert hypertrain._wikitext(tiny_gpt2, path, 3, seed=0) == first  # e.g. KE after MEND


def test_ke_update_splits_into_its_gradient_and_shift_terms(tiny_gpt2):
    """tools/ke_shift_check's two terms add up to the update KE writes (any network weights will do)."""
    from factlocate.editors.hypernetworks import ke
    from tools.ke_shift_check import split_update

    torch.manual_seed(0)
    hp = _hp("ke")
    inners = hypernet.inner_params(tiny_gpt2, 3)
    net = ke.network(tiny_gpt2, hp, inners).eval()
    request = EditRequest("{} is located in the city of", "The Eiffel Tower", "Rome", target_true="Paris")
    parts = split_update(net, tiny_gpt2, inners, request)
    with torch.no_grad():
        whole = ke.updates(net, tiny_gpt2, inners, hypernet.Example(request.text, request.target_new, "", ""))
    for name, delta in whole.items():
        torch.testing.assert_close(parts["full"][name], delta)
        assert parts["gradient"][name].abs().sum() > 0 and parts["shift"][name].abs().sum() > 0
