"""The layer x token sweep of the paper's Figure 5.

For every (fact-token rule, layer) cell, the editor edits each case with its key
taken at that token and written at that layer; ES, PS, NS and S of the edited
model are collected into heatmaps. Each cell is an ordinary evaluation run
(OUT/runs/<editor>-L<layer>-<token>/), so an interrupted sweep resumes.
"""
from __future__ import annotations

import csv
import dataclasses
import io
from pathlib import Path

from tqdm.auto import tqdm

from factlocate.editors.keyvalue.keys import FACT_TOKENS
from factlocate.errors import FactlocateError
from factlocate.evaluation import report, runner
from factlocate.io import write_text
from factlocate.metrics import summary as summ

METRICS = ("ES", "PS", "NS", "S")


def cell_overrides(module, layer: int, token: str, overrides: dict, width: int = 1,
                   n_layers: int | None = None) -> dict:
    """Hyperparameter overrides that put the edit at `layer` with the key at `token`; a range editor (MEMIT) gets
    `width` layers centred on `layer` (one, `layer` itself, by default)."""
    from factlocate.tracing.layer_range import centred

    fields = {f.name for f in dataclasses.fields(module.HParams)}
    if "fact_token" not in fields or not fields & {"layer", "layers"}:
        raise FactlocateError("the sweep needs an editor with fact_token and layer(s) hyperparameters, e.g. rome")
    out = dict(overrides)
    out["fact_token"] = token
    if "layers" in fields:
        if width > 1 and n_layers is None:
            raise FactlocateError("a range of layers centred on each swept layer needs the model's layer count")
        out["layers"] = [layer] if width == 1 else centred(layer, width, n_layers)
    else:
        out["layer"] = layer
    return out


def grid_cells(layers: list[int], tokens: list[str] | None = None, other_every: int = 1) -> list[tuple[str, int]]:
    """(token, layer) cells: the last subject token at every layer, the other rules at every `other_every`-th."""
    tokens = tokens or list(FACT_TOKENS)
    if other_every < 1:
        raise FactlocateError(f"--other-every must be at least 1, got {other_every}")
    return [(t, layer) for i, layer in enumerate(layers) for t in tokens
            if t == "subject_last" or i % other_every == 0]


def run(model, dataset, records, editor: str, layers: list[int], tokens: list[str] | None,
        out: str | Path, overrides: dict | None = None, module=None, progress: bool = True,
        hparams_file: str | None = None, pool=None, model_spec: str | None = None, split: str | None = None,
        cells: list[tuple[str, int]] | None = None, width: int = 1, other_cases: int | None = None) -> str:
    """Run every cell (resuming finished cases), write sweep.csv/.md/.html; return the markdown.

    `cells` lists (token rule, layer) pairs to run instead of every token at every layer (the report sweeps the
    last subject token at every layer and the other tokens at fewer); cells not run are blank. `width`: a range
    editor's layers centred on each swept layer (`cell_overrides`). `other_cases`: the token rules other than the
    last subject token edit only the first `other_cases` records (all when None)."""
    from factlocate import editors

    if other_cases is not None and other_cases < 1:
        raise FactlocateError(f"--other-cases must be at least 1, got {other_cases}")
    if dataset.kind != "counterfact":
        raise FactlocateError("the sweep uses CounterFact's ES, PS and NS: pass a counterfact dataset")
    if cells is not None:
        tokens = [t for t in FACT_TOKENS if any(c[0] == t for c in cells)] + \
            [t for t in dict.fromkeys(c[0] for c in cells) if t not in FACT_TOKENS]
        layers = sorted({c[1] for c in cells})
    tokens = tokens or list(FACT_TOKENS)
    unknown = [t for t in tokens if t not in FACT_TOKENS]
    if unknown:
        raise FactlocateError(f"unknown token rules {unknown}; choose from {', '.join(FACT_TOKENS)}")
    module = module or editors.get(editor)
    out = Path(out)
    params = runner.EvalParams(generation=False)
    grid: dict[str, dict[tuple[str, int], float | None]] = {m: {} for m in METRICS}
    # Layer by layer: a layer's key statistics (minutes on a CPU, cached on disk) serve all its cells together,
    # so a sweep resumed on a machine without that cache computes them again only for the layers still to do.
    cells = cells if cells is not None else [(t, layer) for layer in layers for t in tokens]
    for token, layer in tqdm(cells, desc=f"sweep {editor}", unit="cell", disable=not progress):
        name = f"{editor}-L{layer}-{token}"
        folder = runner.run(
            model, dataset, records if token == "subject_last" else records[:other_cases], editor, out / "runs", params,
            cell_overrides(module, layer, token, overrides or {}, width,
                           None if model is None else int(model.cfg.n_layers)), module=module if pool is None else None,
            progress=False, folder_name=name, hparams_file=hparams_file, pool=pool, model_spec=model_spec,
            split=split,
        )
        cases = report.load_run(folder)["cases"]
        s = summ.summarize([c["post"]["scores"] for c in cases], "counterfact")
        for m in METRICS:
            grid[m][(token, layer)] = None if s[m] is None else s[m][0]
    for m in METRICS:  # cells not run
        for t in tokens:
            for layer in layers:
                grid[m].setdefault((t, layer), None)
    md = _markdown(grid, tokens, layers, editor, len(records), other_cases)
    write_text(out / "sweep.md", md)
    write_text(out / "sweep.csv", _csv(grid, tokens, layers))
    from factlocate.plots.evaluation import sweep_heatmaps

    write_text(out / "sweep.html", sweep_heatmaps(grid, tokens, layers, editor).to_html(include_plotlyjs=True))
    return md


def _markdown(grid, tokens, layers, editor, n, other_cases=None) -> str:
    cases = f"{n} cases" if other_cases is None or other_cases >= n else \
        f"{n} cases at the last subject token, the first {other_cases} at the other tokens"
    lines = [f"# {editor} layer x token sweep ({cases}; post-edit metrics x100)", ""]
    for m in METRICS:
        lines += [f"## {m}", "", "| token | " + " | ".join(f"L{layer}" for layer in layers) + " |",
                  "|---|" + "---:|" * len(layers)]
        for t in tokens:
            vals = [grid[m][(t, layer)] for layer in layers]
            lines.append(f"| {FACT_TOKENS[t]} | " + " | ".join("n/a" if v is None else f"{v:.1f}" for v in vals) + " |")
        lines.append("")
    return "\n".join(lines)


def load_grid(out: str | Path):
    """(grid, tokens, layers) back from OUT/sweep.csv: grid[metric][(token, layer)] is a value x100 or None."""
    text = (Path(out) / "sweep.csv").read_text(encoding="utf-8")
    grid: dict[str, dict[tuple[str, int], float | None]] = {m: {} for m in METRICS}
    tokens, layers = [], []
    for row in csv.DictReader(io.StringIO(text)):
        token, layer = row["token"], int(row["layer"])
        tokens += [token] if token not in tokens else []
        layers += [layer] if layer not in layers else []
        for m in METRICS:
            grid[m][(token, layer)] = float(row[m]) if row[m] != "" else None
    return grid, tokens, layers


def _csv(grid, tokens, layers) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["token", "layer", *METRICS])
    for t in tokens:
        for layer in layers:
            values = [grid[m][(t, layer)] for m in METRICS]
            w.writerow([t, layer, *("" if v is None else round(v, 4) for v in values)])
    return buf.getvalue()
