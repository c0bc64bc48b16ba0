"""`factlocate tune`: a hyperparameter search on dev cases that writes a config `edit` then uses."""
import json

import pytest
import yaml

from factlocate.cli import main
from factlocate.errors import FactlocateError
from factlocate.evaluation import tune


def test_tune_chooses_the_best_s_on_dev_and_writes_a_config_edit_uses(tiny_dirs, tmp_path, one_thread):
    out, config = tmp_path / "search", tmp_path / "ft-l.yaml"
    args = ["tune", "--model", tiny_dirs["gpt2"], "--editor", "ft-l", "--n", "3", "--out", str(out),
            "--grid", "norm_constraint=1e-4,5e-2", "--grid", "num_steps=3", "--set", "layer=1", "--config", str(config),
            "--extend", "1"]
    assert main(args) == 0
    r = json.loads((out / "tune.json").read_text())
    # two points, and the choice is at an edge of them, so the rule tries one more beyond it
    assert r["split"] == "dev" and r["budget_edits"] == 9 and len(r["points"]) == 3
    grid_choice = r["points"][tune.best_index([p["S"] for p in r["points"][:2]])]["point"]["norm_constraint"]
    beyond = 25.0 if grid_choice == 5e-2 else 2e-7  # the edge times the ratio of the two values
    assert r["points"][2]["beyond_grid"] and r["points"][2]["point"] == {"norm_constraint": beyond, "num_steps": 3}
    assert "(beyond the grid)" in (out / "tune.md").read_text() and r["extend"] == 1
    from factlocate import datasets

    dev = [c.case_id for c in datasets.load("counterfact-sample").split("dev")[:3]]
    assert r["cases"] == dev  # the first dev cases, never a test case
    best = max(r["points"], key=lambda p: p["S"])
    assert r["chosen"] == best["point"] and all(p["ci"][0] <= p["S"] <= p["ci"][1] for p in r["points"])
    assert max(p["gap"] for p in r["paired"]) == pytest.approx(best["S"] - min(p["S"] for p in r["points"]))
    values = yaml.safe_load(config.read_text())
    assert values["norm_constraint"] == r["chosen"]["norm_constraint"] and values["num_steps"] == 3
    assert json.loads(config.with_suffix(".evidence.json").read_text())["evidence_sha256"] == \
        tune.file_digest(out / "tune.json")
    edited = tmp_path / "edit.json"
    assert main(["edit", "--model", tiny_dirs["gpt2"], "--editor", "ft-l", "--hparams", str(config), "--prompt",
                 "{} is located in", "--subject", "The Eiffel Tower", "--target", "Rome", "--out", str(edited)]) == 0
    assert json.loads(edited.read_text())["hparams"]["norm_constraint"] == r["chosen"]["norm_constraint"]
    # a rerun resumes: nothing is edited again and the result is the same
    assert main(args) == 0 and json.loads((out / "tune.json").read_text())["points"] == r["points"]


def test_tune_refuses_test_layers_and_a_missing_space(tiny_dirs, tmp_path, capsys):
    assert main(["tune", "--model", tiny_dirs["gpt2"], "--editor", "ft-l", "--split", "test",
                 "--set", "layer=1", "--out", str(tmp_path / "t")]) != 0
    assert "dev only" in capsys.readouterr().err
    with pytest.raises(FactlocateError, match="where-to-edit"):
        tune.TuneSpec("rome", {"layer": [1, 2]})
    with pytest.raises(FactlocateError, match="no shipped search space"):
        tune.default_grid("rome")
    assert len(tune.TuneSpec("kn", tune.default_grid("kn")).points()) == len(tune.TuneSpec(
        "ft-l", tune.default_grid("ft-l")).points()) == len(tune.TuneSpec("ft", tune.default_grid("ft")).points())


def test_a_choice_at_the_edge_of_its_range_is_named():
    grid = {"lr": [1e-5, 1e-4, 1e-3], "edit_scale": [1.0, 2.0], "mode": ["a", "b"], "steps": [25]}
    assert tune.at_edge(grid, {"lr": 1e-3, "edit_scale": 1.0, "mode": "b", "steps": 25}) == \
        {"lr": "largest", "edit_scale": "smallest"}
    assert tune.at_edge(grid, {"lr": 1e-4, "edit_scale": 2.0, "mode": "a", "steps": 25}) == {"edit_scale": "largest"}
    r = {"editor": "ft", "model": "m", "n": 2, "dataset": {"name": "d"}, "split": "dev", "budget_edits": 2,
         "points": [], "paired": [], "chosen": {}, "at_edge": {"lr": "largest"}}
    assert "edge of the searched range for lr (the largest value tried)" in tune.markdown(r)


def test_a_choice_at_an_edge_extends_the_search_by_one_rule():
    grid = {"lr": [1e-5, 1e-4, 1e-3, 5e-3]}
    points = [{"lr": v} for v in grid["lr"]]
    assert tune.extension(grid, points, {"lr": 5e-3}, 2) == {"lr": 0.025}  # the edge times 5e-3 / 1e-3
    assert tune.extension(grid, points + [{"lr": 0.025}], {"lr": 0.025}, 2) == {"lr": 0.125}
    assert tune.extension(grid, points + [{"lr": 0.025}, {"lr": 0.125}], {"lr": 0.125}, 2) is None  # two tried
    assert tune.extension(grid, points + [{"lr": 0.025}], {"lr": 5e-3}, 2) is None  # no longer at an edge
    assert tune.extension(grid, points, {"lr": 1e-5}, 2) == {"lr": 1e-6}
    assert tune.extension(grid, points, {"lr": 1e-4}, 2) is None and tune.extension(grid, points, {"lr": 5e-3}, 0) is None
    # two hyperparameters at their smallest: the first in the grid's order first, the other held at its choice
    kn = {"edit_scale": [1.0, 2.0, 4.0], "adaptive_threshold": [0.1, 0.2]}
    kn_points = tune.TuneSpec("kn", kn).points()
    first = tune.extension(kn, kn_points, {"edit_scale": 1.0, "adaptive_threshold": 0.1}, 2)
    assert first == {"edit_scale": 0.5, "adaptive_threshold": 0.1}
    assert tune.extension(kn, kn_points + [first], {"edit_scale": 1.0, "adaptive_threshold": 0.1}, 2) == \
        {"edit_scale": 1.0, "adaptive_threshold": 0.05}
    # whole numbers stay whole; a range through zero steps by the difference
    assert tune.extension({"steps": [5, 10]}, [{"steps": 5}, {"steps": 10}], {"steps": 10}, 2) == {"steps": 20}
    assert tune.extension({"b": [-1.0, 0.0]}, [{"b": -1.0}, {"b": 0.0}], {"b": 0.0}, 2) == {"b": 1.0}
    # a hyperparameter whose values are not numbers (lists, names) is never extended
    lists = {"lengths": [[5, 1], [10, 5]], "lr": [1e-3, 1e-2]}
    tried = tune.TuneSpec("ft", lists).points()
    assert tune.extension(lists, tried, {"lengths": [10, 5], "lr": 1e-3}, 2) == {"lengths": [10, 5], "lr": 1e-4}
    assert tune.at_edge(lists, {"lengths": [10, 5], "lr": 1e-3}) == {"lr": "smallest"}
