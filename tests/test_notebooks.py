"""The example notebooks: stored stripped, and executed top to bottom on a tiny random model.

`FACTLOCATE_NOTEBOOK_MODEL=tiny` (set by `notebooks.execute(..., model="tiny")`)
makes each notebook load a tiny random GPT-2 and use fewer samples, facts and
steps; a cell that raises fails the test.
"""
from __future__ import annotations

import json
import sys

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from factlocate import notebooks as helpers
from tools import notebooks
from factlocate.errors import FactlocateError


@pytest.mark.parametrize("name", notebooks.NOTEBOOKS)
def test_notebook_is_stored_without_outputs(name):
    nb = nbformat.read(notebooks.notebook_path(name), as_version=4)
    nbformat.validate(nb)
    assert nb.metadata.kernelspec.name == "python3"
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code)
    tagged = [c for c in code if notebooks.FIGURE_TAG in c.metadata.get("tags", [])]
    assert len(tagged) == 1, "one cell per notebook shows the README figure"
    # The one line to change for the paper's model is there.
    assert any('# MODEL = "gpt2-xl"' in c.source for c in code)


@pytest.mark.parametrize("name", notebooks.NOTEBOOKS)
def test_notebook_runs_on_a_tiny_model(name, tmp_path):
    nb = notebooks.execute(notebooks.notebook_path(name), model="tiny", timeout=600, progress=False)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count is not None for c in code)
    errors = [o for c in code for o in c.outputs if o.output_type == "error"]
    assert not errors
    fig = notebooks.tagged_figure(nb)
    assert fig is not None and len(fig.data) > 0
    html = notebooks.to_html(nb, tmp_path / f"{name}.html").read_text()
    assert "Plotly.newPlot" in html  # figures are embedded, readable without Jupyter


def _write(folder, *sources):
    nb = new_notebook(cells=[new_code_cell(s) for s in sources],
                      metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, folder / "probe.ipynb")


def test_runner_uses_this_interpreter_and_reports_failures(tmp_path, monkeypatch, capsys):
    examples = tmp_path / "examples"
    _write(examples, "import os, sys\nprint(sys.executable)\nprint(os.environ['FACTLOCATE_NOTEBOOK_MODEL'])")
    monkeypatch.setattr(notebooks, "examples_dir", lambda: examples)
    out = tmp_path / "out"
    assert notebooks.main(["--out", str(out), "--only", "probe", "--model", "some-model"]) == 0
    executed = nbformat.read(out / "probe.ipynb", as_version=4)
    printed = executed.cells[0].outputs[0].text.split()
    assert printed == [sys.executable, "some-model"]
    assert (out / "probe.html").exists()
    index = json.loads((out / "index.json").read_text())
    assert index["probe"]["ok"] and index["probe"]["model"] == "some-model"
    # Up to date: a rerun skips it.
    assert notebooks.main(["--out", str(out), "--only", "probe", "--model", "some-model"]) == 0
    assert "up to date" in capsys.readouterr().out

    # A cell that raises: the run reports it, still writes the HTML, and exits 1.
    _write(examples, "raise ValueError('boom')")
    assert notebooks.main(["--out", str(out), "--only", "probe", "--force"]) == 1
    index = json.loads((out / "index.json").read_text())
    assert not index["probe"]["ok"] and "boom" in index["probe"]["error"]
    assert "notebooks failed: probe" in capsys.readouterr().err


def test_runner_rejects_unknown_notebooks(capsys):
    assert notebooks.main(["--only", "nope"]) == 2
    assert "factlocate: error: notebook nope.ipynb not found" in capsys.readouterr().err


def test_model_spec_and_fast_mode(monkeypatch):
    monkeypatch.delenv(helpers.MODEL_ENV, raising=False)
    assert helpers.model_spec("gemma-3-270m") == "gemma-3-270m" and not helpers.fast_mode()
    monkeypatch.setenv(helpers.MODEL_ENV, "smollm2-135m")
    assert helpers.model_spec("gemma-3-270m") == "smollm2-135m" and not helpers.fast_mode()
    monkeypatch.setenv(helpers.MODEL_ENV, "tiny-nope")
    with pytest.raises(FactlocateError, match="unknown tiny architecture"):
        helpers.model_spec("gemma-3-270m")
