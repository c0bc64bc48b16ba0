"""The seams a new method passes through: an editor and a corruption written only against the documented
contracts (tests/plugins/) run everywhere a shipped one does after one registry line each; the run folder;
and the defects found from outside, each reproduced."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from factlocate import editors
from factlocate.cli import main
from factlocate.editors.base import Editor
from factlocate.errors import FactlocateError
from factlocate.runfolder import RunFolder
from factlocate.tracing import GridSpec, RunSpec, corruption, trace_kinds

PROMPT, SUBJECT = "The capital of Roman Republic is", "Roman Republic"

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def offline(monkeypatch):
    monkeypatch.setenv("FACTLOCATE_OFFLINE", "1")


@pytest.fixture
def toy_editor(monkeypatch):
    monkeypatch.setitem(editors.EDITORS, "toy-stateful", "tests.plugins.toy_editor")  # the one registry line
    return editors.get("toy-stateful")


@pytest.fixture
def toy_corruption(monkeypatch):
    monkeypatch.setitem(corruption.CORRUPTIONS, "next-token", "tests.plugins.toy_corruption:NextTokenNoise")
    return "next-token"


# ---------------------------------------------------------------- the editor contract


def test_every_registered_editor_declares_itself():
    for name in editors.names():
        editor = editors.get(name)
        assert isinstance(editor, Editor) and editor.NAME == name
        assert editor.stateful == (editor.State is not None) == editor.takes("state")
    assert editors.get("alphaedit").stateful and editors.get("alphaedit").prepare is not None
    assert editors.get("rome").takes("stats") and not editors.get("memit").takes("stats")
    assert editors.get("mend-cf").trained and editors.get("mend-cf").settings == {"data": "cf"}
    assert editors.get("ke-zsre").load_hparams("smollm2-135m").data == "zsre"
    with pytest.raises(FactlocateError, match="means data: cf"):
        editors.get("mend-cf").load_hparams("smollm2-135m", {"data": "zsre"})
    with pytest.raises(FactlocateError, match="a State and the 'state' input come together"):
        Editor("bad", editors.get("rome").HParams, lambda *a, **k: None, inputs=("state",))


def test_a_stateful_editor_written_to_the_contract_runs_through_edit_eval_and_sequential(
        toy_editor, tiny_dirs, tmp_path, capsys, offline):
    model = tiny_dirs["gpt2"]
    one = ["--model", model, "--editor", "toy-stateful"]
    assert main(["edit", *one, "--prompt", "{} is located in", "--subject", "Vinson Massif", "--target", "Paris",
                 "--out", str(tmp_path / "edit.json")]) == 0
    assert json.loads((tmp_path / "edit.json").read_text())["editor"] == "toy-stateful"
    assert main(["edit", *one, "--prompt", "{} is in", "--subject", "Paris", "--target", "Rome",
                 "--templates", str(tmp_path / "none.txt")]) == 2
    assert "does not take --templates" in capsys.readouterr().err

    assert main(["eval", *one, "--dataset", "counterfact-sample", "--n", "2", "--no-generation", "--no-figures",
                 "--out", str(tmp_path / "eval")]) == 0
    assert len(list((tmp_path / "eval" / "toy-stateful" / "cases").glob("*.json"))) == 2

    seq = tmp_path / "seq"
    assert main(["eval", "--sequential", *one, "--dataset", "counterfact-sample", "--batch", "2", "--edits", "6",
                 "--probe-cases", "2", "--no-generation", "--out", str(seq)]) == 0
    from safetensors import safe_open

    with safe_open(str(seq / "toy-stateful" / "state.safetensors"), framework="pt") as f:
        assert float(f.get_tensor("state.batches")) == 3.0  # carried from batch to batch, saved with the deltas
        delta = f.get_tensor(f"delta.{next(k[6:] for k in f.keys() if k.startswith('delta.'))}")
    # three batches of rank-one updates, scaled 1, 2 and 3 by the carried count: the state reached compute_edit
    assert torch.linalg.matrix_rank(delta.float()).item() == 3
    assert (seq / "toy-stateful" / "done.json").exists()
    params = json.loads((seq / "toy-stateful" / "params.json").read_text())
    assert params["perplexity_text"] == "wikitext2-heldout"  # never the text key statistics are built from


# ---------------------------------------------------------------- the corruption contract


def test_a_corruption_written_to_the_contract_runs_on_every_engine(toy_corruption, tiny_gpt2):
    run = RunSpec(samples=3, corrupt=toy_corruption, seed=2)
    grids = [GridSpec("hidden"), GridSpec("mlp", window=2)]
    fast = trace_kinds(tiny_gpt2, PROMPT, SUBJECT, grids, run)
    slow = trace_kinds(tiny_gpt2, PROMPT, SUBJECT, grids, RunSpec(samples=3, corrupt=toy_corruption, seed=2,
                                                                  engine="naive"))
    for kind in ("hidden", "mlp"):
        np.testing.assert_allclose(fast[kind].scores, slow[kind].scores, atol=1e-5, rtol=0)
    assert fast["hidden"].noise["spec"] == "next-token"
    b, e = fast["hidden"].subject_range
    # positions before the corrupted token are not corrupted: restoring them changes nothing
    np.testing.assert_allclose(fast["hidden"].scores[:e], fast["hidden"].low_score, atol=1e-6)
    assert not np.allclose(fast["hidden"].scores[e], fast["hidden"].low_score)

    est = trace_kinds(tiny_gpt2, PROMPT, SUBJECT, grids, RunSpec(samples=3, corrupt=toy_corruption, seed=2,
                                                                 method="atp"))
    assert est["hidden"].low_score == pytest.approx(fast["hidden"].low_score, abs=1e-6)
    verified = trace_kinds(tiny_gpt2, PROMPT, SUBJECT, grids, RunSpec(samples=3, corrupt=toy_corruption, seed=2,
                                                                      method="atp+verify", top=3))
    for kind in ("hidden", "mlp"):
        mask = verified[kind].exact
        assert mask.sum() >= 3
        np.testing.assert_allclose(verified[kind].scores[mask], fast[kind].scores[mask], atol=1e-5, rtol=0)
    diff = trace_kinds(tiny_gpt2, PROMPT, SUBJECT, grids[:1], RunSpec(samples=3, corrupt=toy_corruption, seed=2,
                                                                        metric="logit_diff"))
    assert np.isfinite(diff["hidden"].scores).all()


def test_an_unknown_corruption_is_one_line():
    with pytest.raises(FactlocateError, match="unknown corruption 'nope': use noise, str"):
        RunSpec(corrupt="nope")


# ---------------------------------------------------------------- the run folder


def test_run_folder_checks_parameters_writes_items_and_keeps_time(tmp_path):
    folder = RunFolder(tmp_path / "run").open({"a": 1, "layers": (1, 2)})
    assert folder.todo([1, 2, 3]) == [1, 2, 3]
    done = list(folder.execute([(k, {"x": k}) for k in (1, 2)], lambda p: {"y": p["x"] * 2}, progress=False))
    assert done == [(1, {"y": 2}), (2, {"y": 4})] and folder.read(2) == {"y": 4}
    assert folder.todo([1, 2, 3]) == [3] and not folder.done
    RunFolder(tmp_path / "run").open({"a": 1, "layers": [1, 2]})  # the same, as read back from JSON
    with pytest.raises(FactlocateError, match=r"other parameters \(different a\); use another --out$"):
        RunFolder(tmp_path / "run").open({"a": 2, "layers": [1, 2]})
    with pytest.raises(FactlocateError, match="or --overwrite to discard them"):
        RunFolder(tmp_path / "run").open({"a": 2, "layers": [1, 2]}, overwrite=False)
    marker = folder.finish({"items": 2})
    assert folder.done and marker["items"] == 2 and marker["seconds"] >= 0
    fresh = RunFolder(tmp_path / "run").open({"a": 2}, overwrite=True)
    assert fresh.todo([1, 2]) == [1, 2] and not fresh.done


# ---------------------------------------------------------------- the defects found from outside


def test_alphaedit_with_an_empty_null_space_is_an_error_not_a_zero_update(tiny_gpt2):
    from factlocate.editors.keyvalue import alphaedit
    from factlocate.editors.base import EditRequest

    hp = alphaedit.HParams(layers=[1], nullspace_threshold=1e-30, stats_tokens=500, v_num_grad_steps=1,
                           context_template_lengths=[[5, 1]])
    with pytest.raises(FactlocateError, match="null space is empty.*--set nullspace_threshold"):
        alphaedit.compute_edit(tiny_gpt2, [EditRequest("{} is in", "Paris", "Rome")], hp, progress=False)
    with pytest.raises(FactlocateError, match="pass --set nullspace_threshold=..."):
        alphaedit.HParams.load("someone/unknown-model", {"layers": [1]})
    with pytest.raises(FactlocateError, match="pass --set nullspace_threshold=...$"):
        alphaedit.compute_edit(tiny_gpt2, [EditRequest("{} is in", "Paris", "Rome")],
                               alphaedit.HParams(layers=[1]), progress=False)


def test_trace_out_under_a_file_is_one_line_before_any_work(tiny_dirs, tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    args = ["trace", "--model", tiny_dirs["gpt2"], "--prompt", PROMPT, "--subject", SUBJECT, "--samples", "2",
            "--kind", "hidden", "--out", str(blocker / "trace")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is a file, not a folder" in err and "Traceback" not in err


def test_trace_facts_n_zero_is_refused(tiny_dirs, tmp_path, capsys):
    assert main(["trace-facts", "--model", tiny_dirs["gpt2"], "--n", "0", "--out", str(tmp_path / "f")]) == 2
    assert "--n must be at least 1" in capsys.readouterr().err
    assert not (tmp_path / "f").exists()


def test_eval_unknown_editor_is_named_before_any_data_loads(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("FACTLOCATE_OFFLINE", raising=False)
    assert main(["eval", "--editor", "nosuch", "--dataset", "counterfact-sample", "--out", str(tmp_path / "e")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown editor 'nosuch'" in err


def test_a_trained_network_folder_is_accepted_under_any_spelling(tiny_dirs, tmp_path, capsys):
    rows = [{"case_id": 100000 + i, "prompt": "The mother tongue of Danielle Darrieux is", "target_new": "English",
             "subject": "Danielle", "ground_truth": "x", "rephrase_prompt": "Danielle Darrieux speaks",
             "locality_prompt": "Paris is the capital of", "locality_ground_truth": "x"} for i in range(8)]
    data = tmp_path / "cf.json"
    data.write_text(json.dumps(rows))
    net = tmp_path / "net"
    small = ["rank=8", "steps=2", "batch=2", "val_every=2", "val_size=2", "checkpoint_every=2", "lr=1e-3"]
    train = ["train-editor", "--editor", "mend", "--model", tiny_dirs["gpt2"], "--data", f"cf:{data}",
             "--out", str(net)] + [a for s in small for a in ("--set", s)]
    assert main(train) == 0 and (net / "best.safetensors").exists()
    edit = ["edit", "--model", tiny_dirs["gpt2"], "--prompt", "{} is located in", "--subject", "Vinson Massif",
            "--target", "Paris", "--set", f"checkpoint={net}"]
    for spelling in ("mend-cf", "mend"):
        out = tmp_path / f"{spelling}.json"
        assert main(edit + ["--editor", spelling, "--set", "rank=8", "--out", str(out)]) == 0, capsys.readouterr()
        assert json.loads(out.read_text())["hparams"]["checkpoint"] == str(net)
    assert main(edit + ["--editor", "ke"]) == 2
    assert "holds a mend-cf network, not a ke one" in capsys.readouterr().err


def test_two_clocks_on_one_folder_count_each_second_once(tmp_path):
    import time

    section = RunFolder(tmp_path)
    start = time.time()
    with section.clock(tick=0.01):
        run = RunFolder(tmp_path).open({"a": 1})  # a run writing items in the section's own folder
        for k in range(5):
            time.sleep(0.02)
            run.write(k, {"k": k})
        time.sleep(0.03)
    wall = time.time() - start
    total = json.loads((tmp_path / "time.json").read_text())["seconds"]
    assert 0.9 * wall <= total <= wall + 1e-3  # each second once: double counting would give about 2 x wall
