"""`factlocate report` on a tiny model: every section on one page, and a second call does no new work."""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from importlib import resources

import pytest

from factlocate import predict
from factlocate.errors import FactlocateError
from factlocate.paper import ReportSettings, build, sections
from factlocate.datasets.known_facts import load_facts

TINY_ROME = dict(layer=1, v_num_grad_steps=2, stats_tokens=3000, context_template_lengths=[[5, 1]])


def _known(model, path, n=2):
    """Known facts rewritten to the tiny model's own answers, so they count as known."""
    facts = []
    for fact in load_facts()[:20]:
        top = predict(model, fact["prompt"], top_k=1)[0]["token"].strip()
        if top:
            facts.append({**fact, "attribute": top})
        if len(facts) == n:
            break
    path.write_text(json.dumps(facts))
    return str(path)


def _data(name):
    return str(resources.files("factlocate.data").joinpath(name))


@pytest.fixture(scope="module")
def tiny_settings(tiny_dirs, tmp_path_factory):
    from factlocate import load_model

    model = load_model(tiny_dirs["gpt2"])
    facts = _known(model, tmp_path_factory.mktemp("facts") / "facts.json")
    return ReportSettings(
        model=tiny_dirs["gpt2"], facts=2, facts_file=facts, samples=2, window=2, sweep_cases=1,
        sweep_layers=(0, 1), eval_cases=2, generation=False,
        counterfact=f"counterfact:{_data('counterfact_sample.json')}", zsre=f"zsre:{_data('zsre_sample.json')}",
        counterfact_editors=("unedited", "rome", "ft"), zsre_editors=("unedited", "ft"),
        curie_editors=("rome", "ft"), sequential=(("rome", 2, 1, 1),),
        sequential_dataset=f"counterfact:{_data('counterfact_sample.json')}",
        overrides={"rome": TINY_ROME, "ft": dict(layer=1, num_steps=2)},
    )


def test_report_writes_every_section_and_a_rerun_does_no_work(tiny_settings, tmp_path):
    logs = []
    page = build(tiny_settings, tmp_path, progress=False, log=logs.append)
    html = page.read_text()
    (Path(os.environ.get("FACTLOCATE_REPORT_COPY", tmp_path)) / "tiny-report.html").write_text(html)
    for section in sections.SECTIONS:
        assert f'id="{section.key}"' in html
        assert section.title in html
    assert len(logs) == len(sections.COMPUTE_ORDER)  # every section with work ran once
    assert html.count('class="figure"') == 6 and html.count("<table>") >= 8
    assert "not run yet" not in html
    assert "The paper" in html and "89.2" in html  # GPT-2 XL ROME's S beside the tables
    assert "factlocate trace-facts" in html and "factlocate sweep" in html
    assert "<b>rome: after each logged batch</b>" in html  # the sequential run's per-batch table, titled
    assert "unrelated_subject" in json.loads((tmp_path / "curie" / "unedited.json").read_text())
    table2 = html.split('id="table2"')[1]
    assert table2.index('<td class="">rome</td>') < table2.index('<td class="">ft</td>')  # the settings' order
    folders = {s.folder for s in sections.SECTIONS}  # Figures 2 and 3 share one
    total = sum(json.loads((tmp_path / f / "time.json").read_text())["seconds"] for f in folders)
    assert f"Total wall time, every section's summed (training and tuning included): {total:,.0f} s" in html
    assert "every section has finished" in html

    def no_model(spec):
        raise AssertionError("the second call loaded the model")

    logs.clear()
    again = build(tiny_settings, tmp_path, progress=False, loader=no_model, log=logs.append)
    assert logs == []
    assert again.read_text() == html


def test_changed_settings_rerun_only_their_sections(tiny_settings, tmp_path):
    import dataclasses

    fewer = dataclasses.replace(tiny_settings, curie_editors=("ft",))
    build(fewer, tmp_path, progress=False, log=lambda m: None)
    seconds = json.loads((tmp_path / "curie" / "time.json").read_text())["seconds"]
    logs = []
    build(tiny_settings, tmp_path, progress=False, log=logs.append)  # one editor more in Figure 6
    assert logs == ["factlocate report: Figure 6: generations after rewriting Pierre Curie's field"]
    # The earlier call's time still counts: its results are reused.
    assert json.loads((tmp_path / "curie" / "time.json").read_text())["seconds"] > seconds


def test_an_editor_subset_keeps_the_tables_order():
    from factlocate.paper.settings import editor_subset

    cut = editor_subset(["mend-zsre", "mend", "mend-cf"])
    assert cut == {"counterfact_editors": ("mend", "mend-cf"), "zsre_editors": ("mend", "mend-zsre"),
                   "curie_editors": ("mend", "mend-cf")}
    with pytest.raises(FactlocateError, match="unknown editors"):
        editor_subset(["rome", "mend-xx"])


def test_a_call_for_fewer_editors_reuses_the_finished_run_and_shows_it_whole(tiny_settings, tmp_path):
    import dataclasses
    import importlib

    build_mod = importlib.import_module("factlocate.paper.build")
    by_key = {s.key: s for s in sections.SECTIONS}

    def no_model(spec):
        raise AssertionError("a call covered by the finished run loaded the model")

    def answers(**changes):  # the settings a finished run shows for a call with these changes, or None
        ctx = sections.Context(dataclasses.replace(tiny_settings, **changes), tmp_path, False, no_model)
        return build_mod._finished(ctx, by_key["table2"])

    whole = build(tiny_settings, tmp_path, progress=False, log=lambda m: None, only=("table2", "fig6")).read_text()
    logs = []
    fewer = dataclasses.replace(tiny_settings, counterfact_editors=("rome",), curie_editors=("ft",))
    html = build(fewer, tmp_path, progress=False, loader=no_model, log=logs.append,
                 only=("table2", "fig6")).read_text()
    assert logs == []  # both are done: the finished run holds every editor asked for
    table2 = html.split('id="table2"')[1].split('id="fig6"')[0]
    assert '<td class="">unedited</td>' in table2 and "Partial results" not in table2  # the whole finished run
    assert html == whole
    assert json.loads((tmp_path / "counterfact" / "done.json").read_text())["params"]["editors"] == [
        "unedited", "rome", "ft"]  # the finished run's marker is kept
    assert answers(counterfact_editors=("ft", "rome")).counterfact_editors == ("unedited", "rome", "ft")
    assert answers(counterfact_editors=("rome", "kn")) is None  # an editor the run does not hold
    assert answers(counterfact_editors=("rome",), eval_cases=3) is None  # another setting differs


def test_a_call_with_other_editors_keeps_the_finished_ones_in_its_marker(tiny_settings, tmp_path):
    import dataclasses
    import importlib

    build_mod = importlib.import_module("factlocate.paper.build")
    by_key = {s.key: s for s in sections.SECTIONS}

    def widened(section, **changes):
        ctx = sections.Context(dataclasses.replace(tiny_settings, **changes), tmp_path, False, None)
        return build_mod._widened(ctx, by_key[section], build_mod._held(ctx, by_key[section]))

    first = dataclasses.replace(tiny_settings, counterfact_editors=("unedited", "rome"))
    build(first, tmp_path, progress=False, log=lambda m: None, only=("table2",))
    other = dataclasses.replace(tiny_settings, counterfact_editors=("rome", "ft"))
    logs = []
    build(other, tmp_path, progress=False, log=logs.append, only=("table2",))
    assert logs == ["factlocate report: Table 2: CounterFact"]  # ft was not in the finished run
    held = json.loads((tmp_path / "counterfact" / "done.json").read_text())["params"]["editors"]
    assert held == ["unedited", "rome", "ft"]  # both lists, in the tables' order
    assert build_mod._finished(sections.Context(first, tmp_path, False, None), by_key["table2"]) is not None
    assert widened("table2", counterfact_editors=("ft",), eval_cases=3).counterfact_editors == ("ft",)

    marker = tmp_path / "sequential" / "done.json"  # a finished sequential section, written by hand
    marker.parent.mkdir()
    marker.write_text(json.dumps({"params": sections.params_json(by_key["sequential"], tiny_settings)}))
    assert widened("sequential", sequential=(("ft", 2, 1, 1),)).sequential == (("ft", 2, 1, 1), ("rome", 2, 1, 1))
    assert widened("sequential", sequential=(("rome", 3, 1, 1),)).sequential == (("rome", 3, 1, 1),)  # not both


def test_only_computes_the_named_sections(tiny_settings, tmp_path):
    logs = []
    page = build(tiny_settings, tmp_path, progress=False, log=logs.append, only=("fig2",))
    assert logs == ["factlocate report: Figure 2: average indirect effects over known facts"]
    html = page.read_text()
    assert "not run yet" in html and html.count("No results yet") == len(sections.SECTIONS) - 2  # not fig2, fig3
    with pytest.raises(FactlocateError, match="unknown sections"):
        build(tiny_settings, tmp_path, progress=False, only=("fig4",))


def test_an_unfinished_table_shows_its_rows_and_what_is_left(tiny_settings, tmp_path):
    import dataclasses

    from factlocate.paper.build import NOT_RUN, PARTIAL

    first = dataclasses.replace(tiny_settings, counterfact_editors=("unedited", "ft"))
    build(first, tmp_path, progress=False, log=lambda m: None, only=("table2",))
    html = build(tiny_settings, tmp_path, progress=False, log=lambda m: None, only=()).read_text()
    table2 = html.split('id="table2"')[1].split('id="fig6"')[0]
    assert "Partial results" in table2 and PARTIAL.split(".")[0].strip("*") in table2
    assert '<td class="">ft</td>' in table2 and '<td class="">rome</td>' not in table2
    assert "Still to run: rome." in table2
    assert " s so far." in table2  # the first call's time, and the section is not finished
    assert NOT_RUN.split(":")[0] in html.split('id="table1"')[1].split('id="table2"')[0]  # nothing run there


def test_an_unfinished_sequential_section_names_the_runs_left(tiny_settings, tmp_path):
    import dataclasses

    build(tiny_settings, tmp_path, progress=False, log=lambda m: None, only=("sequential",))
    wider = dataclasses.replace(tiny_settings, sequential=(("rome", 2, 1, 1), ("ft", 2, 1, 1)))

    def shown():
        html = build(wider, tmp_path, progress=False, log=lambda m: None, only=()).read_text()
        return html.split('id="sequential"')[1]

    page = shown()
    assert "Partial results" in page and "Still to run: ft." in page
    (tmp_path / "sequential" / "rome" / "done.json").unlink()  # as if stopped after its edits, before scoring
    assert "Still to run: rome (2 of 2 edits), ft." in shown()


def test_a_killed_sections_time_counts_when_it_is_finished(tmp_path):
    import time

    from factlocate.runfolder import RunFolder

    with pytest.raises(KeyboardInterrupt):
        with RunFolder(tmp_path).clock(tick=0.01):
            time.sleep(0.1)
            raise KeyboardInterrupt  # the first call dies part way
    first = json.loads((tmp_path / "time.json").read_text())["seconds"]
    assert first >= 0.1
    with RunFolder(tmp_path).clock(tick=0.01) as elapsed:
        time.sleep(0.05)
    assert elapsed() >= first + 0.05


def test_a_section_folder_written_before_time_json_keeps_its_time(tmp_path):
    import importlib

    build_mod = importlib.import_module("factlocate.paper.build")  # the package exports its function `build`
    (tmp_path / "timing.json").write_text(json.dumps({"seconds": 100.0}))
    (tmp_path / "elapsed.json").write_text(json.dumps({"seconds": 5.0}))
    assert build_mod._legacy_seconds(tmp_path) == 105.0
    build_mod._carry_legacy_time(tmp_path)
    assert json.loads((tmp_path / "time.json").read_text())["seconds"] == 105.0
    assert not (tmp_path / "timing.json").exists() and not (tmp_path / "elapsed.json").exists()


def test_figure5_sweeps_known_dev_cases_with_cis(tiny_settings, tmp_path):
    """Figure 5 runs on dev cases only (known to the model), the last subject token at every layer and the others
    at every third; its table gives S with CIs and the best layer against its neighbours, paired."""
    from factlocate import datasets

    build(tiny_settings, tmp_path, progress=False, log=lambda *_: None, only=("fig5",))
    runs = sorted((tmp_path / "sweep" / "runs").glob("*/params.json"))
    assert {json.loads(p.read_text())["dataset"]["split"] for p in runs} == {"dev"}
    dev = {r.case_id for r in datasets.load(tiny_settings.counterfact).split("dev")}
    cases = {int(p.stem) for p in (tmp_path / "sweep" / "runs").glob("*/cases/*.json")}
    assert cases and cases <= dev
    html = (tmp_path / "index.html").read_text()
    section = html.split('id="fig5"')[1].split("<h2")[0]
    assert "S(best) - S(layer), paired" in section and "best" in section and "--split dev --known" in section


def test_verify_reruns_every_section_and_catches_a_corrupted_number(tiny_settings, tmp_path, capsys):
    from factlocate.cli import main
    from factlocate.paper import verify

    build(tiny_settings, tmp_path, progress=False, log=lambda *_: None)
    results = verify.verify(tmp_path, k=1, log=lambda *_: None)
    ran = {s for s, r in results.items() if "skipped" not in r}
    assert {"fig2", "fig5", "table1", "table2", "fig6"} <= ran
    assert all(verify.passed(r) for r in results.values()), results
    # corrupt one committed number of a Table 2 case: --verify with every case of the section finds it
    case = sorted((tmp_path / "counterfact" / "rome" / "cases").glob("*.json"))[0]
    data = json.loads(case.read_text())
    data["post"]["scores"]["PS"] += 0.25
    case.write_text(json.dumps(data))
    assert main(["report", "--out", str(tmp_path), "--verify", "100"]) == 1
    out = capsys.readouterr().out
    assert "table2: DIFFERS, largest difference 0.25" in out and "rome" in out
    assert "table1: ok" in out and json.loads((tmp_path / "verify.json").read_text())["k"] == 100


def test_settings_file_is_the_page_command_and_the_page_shows_provenance(tiny_settings, tmp_path):
    """A settings file gives the same settings as the flags; the page prints it, its command, and what made it."""
    import dataclasses

    import yaml

    from factlocate.paper import settings as settings_mod

    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(json.loads(json.dumps(dataclasses.asdict(tiny_settings)))))
    assert settings_mod.load(path) == tiny_settings
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: x\nsweep_layerz: [1]\n")
    with pytest.raises(FactlocateError, match="unknown report settings"):
        settings_mod.load(bad)
    out = tmp_path / "page"
    html = build(settings_mod.load(path), out, progress=False, log=lambda *_: None, only=("fig2",),
                 settings_file=str(path)).read_text()
    assert f"factlocate report --settings {path} --out {out}" in html and "sweep_layers" in html
    prov = json.loads((out / "provenance.json").read_text())
    assert len(prov["model"].rsplit("-", 1)[1]) == 16 and prov["datasets"][tiny_settings.counterfact] != ""
    assert prov["model"] in html and "requirements.lock" in html


def test_committed_report_settings_load():
    from factlocate.paper import settings as settings_mod

    for model in ("smollm2-135m", "gemma-3-270m"):
        s = settings_mod.load(resources.files("factlocate").joinpath("configs", "report", f"{model}.yaml"))
        assert s.model == model and s.counterfact == "counterfact-sample" and s.zsre == "zsre-sample"


def test_training_is_a_section_and_the_tables_edit_with_its_checkpoints(tiny_settings, tmp_path):
    import dataclasses

    rows = [{"case_id": 100000 + i, "prompt": p, "target_new": t, "subject": p.split(" ")[0], "ground_truth": "x",
             "rephrase_prompt": p + " really", "locality_prompt": "Paris is the capital of",
             "locality_ground_truth": "x"}
            for i, (p, t) in enumerate([("The Eiffel Tower is located in", "Rome"),
                                        ("LeBron James plays the sport of", "football"),
                                        ("BBC One is owned by", "Sega"), ("Apple A5 was created by", "Google")] * 3)]
    data = tmp_path / "cf-train.json"
    data.write_text(json.dumps(rows))
    small = dict(rank=16, lr=1e-3, lr_lr=1e-3, edit_lr=1e-2, batch=2, val_every=3, val_size=2, checkpoint_every=2,
                 patience=50, steps=3)
    s = dataclasses.replace(tiny_settings, train={"mend-cf": f"cf:{data}"}, counterfact_editors=("unedited", "mend-cf"),
                            overrides={**tiny_settings.overrides, "mend-cf": small}, generated_columns=False)
    out = tmp_path / "page"
    html = build(s, out, progress=False, log=lambda *_: None, only=("training", "table2")).read_text()
    section = html.split('id="training"')[1].split("<h2")[0]
    assert "mend-cf" in section and "checkpoint sha256" in section and "not trained yet" not in section
    assert (out / "training" / "mend-cf" / "best.safetensors").exists()
    used = json.loads((out / "counterfact" / "mend-cf" / "params.json").read_text())["hparams"]["checkpoint"]
    assert used == str(out / "training" / "mend-cf")
    assert "factlocate train-editor --editor mend" in html


def test_largest_difference_compares_what_the_stored_result_holds():
    from factlocate.evaluation.replay import largest_difference

    stored = {"a": 1.0, "b": [1, 2], "time": 5.0}
    assert largest_difference({"a": 1.25, "b": [1, 2], "time": 9.0}, stored) == (0.25, "/a")
    assert largest_difference({"a": 1.0, "b": [1, 2], "new_field": 3}, stored)[0] == 0.0  # added since: not compared
    assert largest_difference({"b": [1, 2]}, stored)[0] == float("inf")  # a stored number the fresh result lacks
    assert largest_difference({"a": 1.0, "b": [1]}, stored)[0] == float("inf")


def test_tuning_is_a_section_on_dev_and_the_tables_edit_with_its_choice(tiny_settings, tmp_path):
    import dataclasses

    s = dataclasses.replace(tiny_settings, tune={"ft": 2}, counterfact_editors=("unedited", "ft"),
                            generated_columns=False)
    out = tmp_path / "page"
    html = build(s, out, progress=False, log=lambda *_: None, only=("tuning", "table2")).read_text()
    r = json.loads((out / "tuning" / "ft" / "tune.json").read_text())
    assert r["split"] == "dev" and len(r["points"]) == 6 and r["fixed"] == {"layer": 1, "num_steps": 2}
    from factlocate import datasets

    test_ids = {c.case_id for c in datasets.load(s.counterfact).split("test")}
    assert not set(r["cases"]) & test_ids  # chosen on cases the table never reports
    used = json.loads((out / "counterfact" / "ft" / "params.json").read_text())["hparams"]
    assert used["lr"] == r["chosen"]["lr"] and used["layer"] == 1
    section = html.split('id="tuning"')[1].split("<h2")[0]
    assert "Not tuned" not in section and "lr=" in section and "factlocate tune" in html  # every editor is tuned


SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.mark.skipif(not (SHARED / "counterfact_portability_gpt4.json").is_file(), reason="needs ../shared/data")
def test_portability_is_a_section_on_the_one_hop_files_test_split(tiny_settings, tmp_path):
    import dataclasses

    from factlocate import datasets

    spec = f"counterfact:{SHARED / 'counterfact_portability_gpt4.json'}"
    s = dataclasses.replace(tiny_settings, portability_dataset=spec, portability_editors=("unedited", "ft"))
    out = tmp_path / "page"
    html = build(s, out, progress=False, log=lambda *_: None, only=("portability",)).read_text()
    test_ids = [r.case_id for r in datasets.load(spec, allow_download=False).split("test")][: s.eval_cases]
    for name in ("unedited", "ft"):
        cases = [json.loads(p.read_text()) for p in sorted((out / "portability" / name / "cases").glob("*.json"))]
        assert sorted(c["case_id"] for c in cases) == sorted(test_ids)
        assert all(0 <= c["post"]["teacher_forced"] <= 1 for c in cases)
        if name == "unedited":
            assert all(c["pre"] == c["post"] for c in cases)
    section = html.split('id="portability"')[1].split("<h2")[0]
    assert "one-hop" in section and ">ft<" in section and "Not run" not in section
    from factlocate.paper import verify

    checked = verify.verify(out, k=2, log=lambda *_: None, only=("portability",))["portability"]
    assert len(checked["items"]) == 2 and verify.passed(checked), checked


def test_figure5_other_tokens_on_fewer_cases_is_a_setting_the_command_and_text_name(tiny_settings):
    from factlocate.paper import editing

    s = dataclasses.replace(tiny_settings, sweep_cases=3, sweep_other_cases=1)
    assert "--known --n 3 --layer 0,1 --other-cases 1 --other-every 3" in editing.sweep_command(s, Path("out"))
    with pytest.raises(FactlocateError, match="sweep_other_cases must be a positive integer"):
        dataclasses.replace(tiny_settings, sweep_other_cases=0)
