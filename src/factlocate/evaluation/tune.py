"""Hyperparameter search on `dev`, with the same budget for every editor.

    factlocate tune --model M --editor ft-l --n 20 --out DIR [--grid norm_constraint=1e-4,5e-4] [--config FILE]

Each point of the grid (the product of its lists, in order) is an ordinary evaluation run
(DIR/runs/<editor>-<point>/) on the first `n` cases of the dataset's `dev` split, so a search resumes and a
larger `n` extends it. The point with the highest CounterFact S (the harmonic mean of ES, PS and NS over the
cases) is chosen; a tie goes to the earlier point. Every point's S has a 95% CI that resamples cases, and the
chosen point is compared with each other one, paired over the same cases.

Without `--grid` the editor's search space is the shipped `configs/tune/<editor>.yaml`: the same number of
points for every editor, so each gets the same budget (points x cases edits).

A choice at the edge of its range says a wider range might score higher, so every search follows one rule
(`extend`, default 2): while the chosen value of a numeric hyperparameter is the largest or smallest tried, the
next value beyond it is tried (the edge times the ratio of the two outermost values; their difference where a
value is not positive), the other hyperparameters at their chosen values, at most `extend` times per
hyperparameter. The rule is the same for every editor, and the points it adds are marked in the table. The
search writes

    DIR/tune.json   the grid, every point's ES/PS/NS/S with CIs, the choice, the paired gaps, the dataset's
                    name, digest and split, the model and the budget
    DIR/tune.md     the same as a table

and, with `--config`, the editor's config with the chosen values, headed by the evidence file and its digest
(and FILE.evidence.json beside it), which `factlocate edit --hparams FILE` and the report then use.
"""
from __future__ import annotations

import dataclasses
import itertools
from importlib import resources
from pathlib import Path

import yaml

from factlocate.errors import FactlocateError
from factlocate.io import file_digest, read_json, write_json, write_text
from factlocate.metrics import localisation as loc

SPLIT = "dev"
EXTEND = 2  # the default number of points a search may try beyond each edge its choice lies on


@dataclasses.dataclass(frozen=True)
class TuneSpec:
    """One search: an editor, its grid ({hyperparameter: values}), the number of dev cases, and overrides every
    point shares (`fixed`, e.g. the layer of a model with no shipped config)."""

    editor: str
    grid: dict
    n: int = 20
    fixed: dict = dataclasses.field(default_factory=dict)
    extend: int = EXTEND  # points tried beyond an edge the choice lies on, at most, per hyperparameter

    def __post_init__(self):
        if not isinstance(self.extend, int) or self.extend < 0:
            raise FactlocateError(f"extend is a number of points (0 or more), got {self.extend!r}")
        if not isinstance(self.n, int) or self.n < 2:
            raise FactlocateError(f"a search needs at least 2 cases (for its CIs), got n={self.n!r}")
        if not self.grid or not all(isinstance(v, list) and v for v in self.grid.values()):
            raise FactlocateError(f"the grid needs at least one hyperparameter with a list of values, got {self.grid!r}")
        if {"layer", "layers", "fact_token"} & set(self.grid):
            raise FactlocateError("layers are chosen by `factlocate where-to-edit`, not by tune")
        if set(self.grid) & set(self.fixed):
            raise FactlocateError(f"{sorted(set(self.grid) & set(self.fixed))} both searched and fixed")

    def points(self) -> list[dict]:
        keys = list(self.grid)
        return [dict(zip(keys, values)) for values in itertools.product(*(self.grid[k] for k in keys))]


def default_grid(editor: str) -> dict:
    """The shipped search space of `editor` (configs/tune/<editor>.yaml)."""
    path = resources.files("factlocate.configs") / "tune" / f"{editor}.yaml"
    if not path.is_file():
        raise FactlocateError(f"no shipped search space for {editor}: give --grid KEY=V1,V2,...")
    return yaml.safe_load(path.read_text())["grid"]


def point_name(editor: str, point: dict) -> str:
    return editor + "-" + "-".join(f"{k}={v}" for k, v in point.items())


def run(model, dataset, records: list, spec: TuneSpec, out: str | Path, progress: bool = True) -> Path:
    """Evaluate every point on the first `spec.n` records (the dev split's, in order), then the points beyond an
    edge (`extension`); resumable. Returns `out`."""
    from factlocate.evaluation import runner
    from factlocate.evaluation.where import aggregate_s

    if dataset.kind != "counterfact":
        raise FactlocateError("tune scores CounterFact's S (ES, PS, NS): pass a counterfact dataset")
    out = Path(out)
    chosen = list(records)[: spec.n]
    if len(chosen) < spec.n:
        raise FactlocateError(f"the {SPLIT} split holds {len(chosen)} cases, fewer than n={spec.n}")
    cases = [r.case_id for r in chosen]
    params = runner.EvalParams(generation=False)
    tried, i = spec.points(), 0
    while i < len(tried):
        runner.run(model, dataset, chosen, spec.editor, out / "runs", params, overrides={**spec.fixed, **tried[i]},
                   folder_name=point_name(spec.editor, tried[i]), progress=progress, split=SPLIT)
        i += 1
        if i == len(tried):  # the grid (and any extension) is done: is the choice at an edge?
            scores = [aggregate_s(_rows(out / "runs" / point_name(spec.editor, p), cases)) for p in tried]
            beyond = extension(spec.grid, tried, tried[best_index(scores)], spec.extend)
            tried += [beyond] if beyond is not None else []
    write_json(out / "spec.json", {**dataclasses.asdict(spec), "split": SPLIT, "cases": cases,
                                   "extended": tried[len(spec.points()):]})
    return out


def best_index(scores: list[float]) -> int:
    """The highest S; a tie goes to the earlier point."""
    return max(range(len(scores)), key=lambda i: (round(scores[i], 6), -i))


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def extension(grid: dict, tried: list[dict], chosen: dict, extend: int) -> dict | None:
    """The next point beyond the edge the choice lies on (see the module docstring), or None.

    A hyperparameter is extended while its chosen value is the smallest or largest of the values tried and fewer
    than `extend` values outside the grid's own range have been tried; the first such hyperparameter (in the
    grid's order) is extended first."""
    values = {k: sorted({p[k] for p in tried}) for k, v in grid.items() if all(_number(x) for x in v)}
    for name, side in at_edge(values, chosen).items():
        inside = [v for v in values[name] if min(grid[name]) <= v <= max(grid[name])]
        if len(values[name]) - len(inside) >= extend:
            continue
        edge, inner = (values[name][-1], values[name][-2]) if side == "largest" else (values[name][0], values[name][1])
        step = edge * (edge / inner) if edge > 0 and inner > 0 else edge + (edge - inner)
        if all(isinstance(v, int) for v in grid[name]):
            step = int(round(step))
        else:
            step = float(f"{step:.6g}")
        if step != edge:
            return {**chosen, name: step}
    return None


def _rows(folder: Path, cases: list) -> list[dict]:
    from factlocate.evaluation.where import outcome

    by_id = {c["case_id"]: c for c in (read_json(p) for p in (folder / "cases").glob("*.json"))}
    missing = [c for c in cases if c not in by_id]
    if missing:
        raise FactlocateError(f"{folder} lacks {len(missing)} of the search's cases: rerun tune to finish it")
    return [{"case_id": c, **outcome(by_id[c])} for c in cases]


def analyse(out: str | Path, n_boot: int = 1000, seed: int = 0) -> dict:
    """Every point's scores with CIs, the chosen point and its paired gaps; writes tune.json and tune.md."""
    from factlocate.evaluation.where import aggregate_s

    out = Path(out)
    saved = read_json(out / "spec.json")
    spec = TuneSpec(saved["editor"], saved["grid"], saved["n"], saved.get("fixed", {}), saved.get("extend", 0))
    cases = saved["cases"]
    tried = spec.points() + saved.get("extended", [])
    rows = {}
    for point in tried:
        folder = out / "runs" / point_name(spec.editor, point)
        rows[point_name(spec.editor, point)] = _rows(folder, cases)
    first = read_json(out / "runs" / point_name(spec.editor, spec.points()[0]) / "params.json")

    def s_of(name):
        by = {r["case_id"]: r for r in rows[name]}
        return lambda cs: aggregate_s([by[c] for c in cs])

    points = []
    for i, point in enumerate(tried):
        name = point_name(spec.editor, point)
        means = {m: 100 * float(sum(r[m] for r in rows[name]) / len(cases)) for m in ("ES", "PS", "NS")}
        points.append({"point": point, "name": name, **means, "S": s_of(name)(cases),
                       "ci": loc.bootstrap(cases, s_of(name), n_boot, seed), "beyond_grid": i >= len(spec.points())})
    best = best_index([p["S"] for p in points])
    paired = []
    for i, p in enumerate(points):
        if i != best:
            def gap(cs, i=i):
                return s_of(points[best]["name"])(cs) - s_of(points[i]["name"])(cs)
            paired.append({"point": p["point"], "gap": gap(cases), "ci": loc.bootstrap(cases, gap, n_boot, seed)})
    result = {"editor": spec.editor, "model": first["model"], "dataset": first["dataset"], "split": SPLIT,
              "grid": spec.grid, "fixed": spec.fixed, "extend": spec.extend, "n": spec.n, "cases": cases,
              "budget_edits": len(points) * len(cases), "points": points, "chosen": points[best]["point"],
              "paired": paired, "at_edge": at_edge({k: [p[k] for p in tried] for k in spec.grid}, points[best]["point"])}
    write_json(out / "tune.json", result)
    write_text(out / "tune.md", markdown(result))
    return result


def at_edge(grid: dict, chosen: dict) -> dict[str, str]:
    """The searched hyperparameters whose chosen value is the smallest or largest of several numbers tried: a
    wider range might score higher there. {name: "smallest" | "largest"}."""
    out = {}
    for name, values in grid.items():
        if not all(_number(v) for v in values):
            continue
        numbers = sorted(set(values))
        if len(numbers) < 2:
            continue
        if chosen[name] == min(numbers):
            out[name] = "smallest"
        elif chosen[name] == max(numbers):
            out[name] = "largest"
    return out


def markdown(r: dict) -> str:
    def ci(c):
        return f"[{c[0]:.1f}, {c[1]:.1f}]"

    lines = [f"# {r['editor']} on {r['model']}: search on {r['n']} {r['dataset']['name']} {r['split']} cases "
             f"({r['budget_edits']} edits)", "",
             "| point | ES | PS | NS | S [95% CI] | chosen minus this, paired [95% CI] |", "|---|---:|---:|---:|---:|---:|"]
    gaps = {str(p["point"]): p for p in r["paired"]}
    for p in r["points"]:
        label = ", ".join(f"{k}={v}" for k, v in p["point"].items())
        g = gaps.get(str(p["point"]))
        gap = "" if g is None else f"{g['gap']:.1f} {ci(g['ci'])}"
        mark = (" (beyond the grid)" if p.get("beyond_grid") else "") + (" **(chosen)**" if p["point"] == r["chosen"] else "")
        lines.append(f"| {label}{mark} | {p['ES']:.1f} | {p['PS']:.1f} | {p['NS']:.1f} | "
                     f"{p['S']:.1f} {ci(p['ci'])} | {gap} |")
    if any(p.get("beyond_grid") for p in r["points"]):
        lines += ["", f"Points beyond the grid: the choice lay at an edge, and the search tried the next value "
                      f"beyond it (at most {r.get('extend', 0)} per hyperparameter, the same rule for every editor)."]
    if r.get("at_edge"):
        lines += ["", "The choice lies at the edge of the searched range for " +
                  ", ".join(f"{k} (the {v} value tried)" for k, v in r["at_edge"].items()) +
                  ": a wider range might score higher."]
    return "\n".join(lines) + "\n"


def write_config(out: str | Path, config: str | Path) -> dict:
    """The editor's config with the chosen values (the rest as the search's runs had them), and its evidence."""
    out, config = Path(out), Path(config)
    evidence = out / "tune.json"
    r = read_json(evidence)
    values = read_json(out / "runs" / point_name(r["editor"], r["chosen"]) / "params.json")["hparams"]
    head = (f"# {r['editor']} on {r['model']}: {', '.join(f'{k}={v}' for k, v in r['chosen'].items())} chosen by "
            f"`factlocate tune`\n# from {r['n']} {r['dataset']['name']} {r['split']} cases; evidence: {evidence} "
            f"(sha256 {file_digest(evidence)})\n")
    choice = {"chosen": r["chosen"], "evidence": str(evidence), "evidence_sha256": file_digest(evidence)}
    write_text(config, head + yaml.safe_dump(values, sort_keys=False))
    write_json(config.with_suffix(".evidence.json"), choice)
    return choice
