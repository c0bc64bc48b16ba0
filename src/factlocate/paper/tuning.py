"""The page's own hyperparameter search for the baselines: a section before the tables, on `dev` only.

`ReportSettings.tune` maps each tuned editor to its number of `dev` cases (`{"ft": 20, "ft-l": 20, "kn": 20}`).
Each is searched over its shipped space (`configs/tune/<editor>.yaml`, the same number of points for each, and
the same rule for a choice at an edge of it: `tune.extension`) into
DIR/tuning/<editor> (`factlocate tune`'s resumable folder), and the tables and Figure 6 edit with the chosen
values. Editors not listed keep their configs, and the section says which were not tuned.
"""
from __future__ import annotations

from pathlib import Path

from factlocate.errors import FactlocateError
from factlocate.evaluation.tune import EXTEND
from factlocate.io import file_digest, read_json
from factlocate.paper.context import Context, q
from factlocate.paper.settings import ReportSettings

FOLDER = "tuning"


def chosen(s: ReportSettings, name: str, out: Path) -> dict:
    """The values the page's search chose for `name` ({} for an editor the page does not tune)."""
    if name not in s.tune:
        return {}
    path = out / FOLDER / name / "tune.json"
    if not path.is_file():
        raise FactlocateError(f"{name} is tuned on this page and its search ({path}) has not run: compute the "
                              "tuning section first")
    return dict(read_json(path)["chosen"])


def params(s: ReportSettings) -> dict:
    return dict(model=s.model, tune=dict(s.tune), dataset=s.counterfact, split="dev",
                fixed={k: s.overrides.get(k, {}) for k in s.tune}, extend=EXTEND)


def compute(ctx: Context) -> None:
    from factlocate import datasets
    from factlocate.evaluation import tune

    s = ctx.settings
    ds = datasets.load(s.counterfact)
    for name, n in s.tune.items():
        spec = tune.TuneSpec(name, tune.default_grid(name), n, dict(s.overrides.get(name, {})))
        tune.run(ctx.model, ds, ds.split(tune.SPLIT), spec, ctx.folder(FOLDER) / name, progress=ctx.progress)
        tune.analyse(ctx.folder(FOLDER) / name)


def render(ctx: Context) -> list:
    s = ctx.settings
    untuned = [e for e in dict.fromkeys(s.counterfact_editors + s.zsre_editors)
               if e not in s.tune and e != "unedited"]
    note = (f"Not tuned on this page: {', '.join(untuned)} (their configs' values; the key-value editors' layer "
            "comes from Figure 5's `dev` sweep, MEND and KE are trained).") if untuned else ""
    if not s.tune:
        return ["No hyperparameter is searched on this page. " + note]
    rows = ["| editor | dev cases | points | edits | chosen | S at the choice [95% CI] | S range over the points | "
            "choice at the range's edge | evidence sha256 |", "|---|---:|---:|---:|---|---:|---:|---|---|"]
    for name in s.tune:
        path = ctx.folder(FOLDER) / name / "tune.json"
        if not path.is_file():
            rows.append(f"| {name} | {s.tune[name]} | | | not searched yet | | | | |")
            continue
        r = read_json(path)
        best = next(p for p in r["points"] if p["point"] == r["chosen"])
        values = ", ".join(f"{k}={v}" for k, v in r["chosen"].items())
        low, high = min(p["S"] for p in r["points"]), max(p["S"] for p in r["points"])
        edge = ", ".join(f"{k}: {v} tried" for k, v in r.get("at_edge", {}).items()) or "no"
        rows.append(f"| {name} | {r['n']} | {len(r['points'])} | {r['budget_edits']} | {values} | "
                    f"{best['S']:.1f} [{best['ci'][0]:.1f}, {best['ci'][1]:.1f}] | {low:.1f}-{high:.1f} | "
                    f"{edge} | `{file_digest(path)}` |")
    return ["Each tuned editor's space, searched on `dev` with the same number of points and one rule for a choice "
            f"at an edge of it (the next value beyond the edge is tried, at most {EXTEND} per hyperparameter; "
            "counted in the points column); the tables and Figure 6 edit with the chosen values (each "
            "search's table: `tuning/<editor>/tune.md`). " + note, "\n".join(rows)]


def command(s: ReportSettings, out: Path) -> str:
    if not s.tune:
        return "(nothing to tune: no `tune` entries in the settings)"
    sets = {k: " ".join(f"--set {q(f'{a}={b}')}" for a, b in s.overrides.get(k, {}).items()) for k in s.tune}
    return " && ".join(f"factlocate tune --model {s.model} --editor {e} --dataset {q(s.counterfact)} --n {n} "
                       f"{sets[e]} --out {out}/{FOLDER}/{e}".replace("  ", " ") for e, n in s.tune.items())
