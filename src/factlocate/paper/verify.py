"""`factlocate report --verify K`: re-run K random cases or facts of every section and compare with the page's files.

    results = verify("docs/report/smollm2-135m", k=2)     # {section: {"items", "max_diff", "where"} or {"skipped"}}

The page's own settings (DIR/settings.json) say how each section ran; each re-run uses the recorded parameters
of the folder it checks (`evaluation.replay`). Written to DIR/verify.json with the seed and K. A section passes
when its largest difference is at most `TOLERANCE`.
"""
from __future__ import annotations

from pathlib import Path

from factlocate.errors import FactlocateError
from factlocate.evaluation import replay
from factlocate.io import read_json, write_json
from factlocate.paper import portability
from factlocate.paper.settings import ReportSettings

TOLERANCE = 1e-4
NOT_REPLAYED = {
    "fig3": "drawn from Figure 2's folder, which fig2 checks",
    "sequential": "each logged state follows from every edit before it: not re-run case by case",
}


def _dataset(spec: str, runs: list[Path]):
    """The dataset the runs recorded: a shipped sample by its name (pages made when `counterfact` still fell back
    to the sample say so in their runs), else the settings' spec."""
    from factlocate import datasets

    names = {read_json(r / "params.json")["dataset"]["name"] for r in runs}
    if len(names) == 1 and next(iter(names)) in ("counterfact-sample", "zsre-sample"):
        return datasets.load(next(iter(names)))
    return datasets.load(spec)


def _runs(model, runs: list[Path], spec: str, k: int, seed: int) -> dict:
    """K (run folder, case) pairs at random over the section's evaluation folders, re-run and compared."""
    pairs = [(run, int(p.stem)) for run in runs for p in (run / "cases").glob("*.json")]
    if not pairs:
        return {"skipped": "no results"}
    chosen = replay.sample(pairs, k, seed)
    dataset = _dataset(spec, runs)
    out = {"items": [], "max_diff": 0.0, "where": ""}
    for run in sorted({r for r, _ in chosen}):
        got = replay.replay_cases(model, run, dataset, [c for r, c in chosen if r == run])
        out["items"] += [f"{run.name}/{c}" for c in got["items"]]
        if got["max_diff"] >= out["max_diff"]:
            out["max_diff"], out["where"] = got["max_diff"], f"{run.name} {got['where']}"
    return out


def _facts(model, folder: Path, k: int, seed: int) -> dict:
    traced = [p.stem.removeprefix("known_") for p in (folder / "cases").glob("known_*.json")
              if read_json(p).get("correct_prediction")]
    if not traced:
        return {"skipped": "no results"}
    return replay.replay_facts(model, folder, replay.sample(traced, k, seed))


def _curie(model, settings: ReportSettings, folder: Path, k: int, seed: int) -> dict:
    from factlocate.paper.editing import curie_edit

    names = [n for n in settings.curie_editors if (folder / f"{n}.json").exists()]
    if not names:
        return {"skipped": "no results"}
    unrelated = read_json(folder / "unedited.json").get("unrelated_subject") if (folder / "unedited.json").exists() \
        else None
    results = {n: replay.largest_difference(curie_edit(model, settings, n, folder.parent, unrelated), read_json(folder / f"{n}.json"))
               for n in replay.sample(names, k, seed)}
    worst = max(results.items(), key=lambda kv: kv[1][0])
    return {"items": list(results), "max_diff": worst[1][0], "where": f"{worst[0]}: {worst[1][1]}"}


def _fig1(model, settings: ReportSettings, folder: Path) -> dict:
    from factlocate.paper.tracing import run_spec
    from factlocate.tracing import GridSpec, trace_kinds
    from factlocate.tracing.result import TraceResult

    stored = {p.stem.removeprefix("trace_"): TraceResult.load(p) for p in folder.glob("trace_*.json")}
    if not stored:
        return {"skipped": "its trace files are not kept with the page"}
    first = next(iter(stored.values()))
    fresh = trace_kinds(model, first.prompt, first.subject, [GridSpec(k, settings.window) for k in stored],
                        run_spec(settings))
    diffs = {k: replay.largest_difference(fresh[k].scores.tolist(), r.scores.tolist()) for k, r in stored.items()}
    worst = max(diffs.items(), key=lambda kv: kv[1][0])
    return {"items": [first.prompt], "max_diff": worst[1][0], "where": f"{worst[0]}: {worst[1][1]}"}


def verify(out: str | Path, k: int, seed: int = 0, loader=None, log=print, only: tuple[str, ...] | None = None) -> dict:
    """Re-run K items of every section of the page in `out` (or of the sections in `only`); write and return
    {section: result}."""
    from factlocate.models import load_model

    out = Path(out)
    settings = ReportSettings(**read_json(out / "settings.json"))
    model = (loader or load_model)(settings.model)
    sweep_runs = sorted(p.parent for p in (out / "sweep" / "runs").glob("*/params.json"))
    checks = {
        "fig1": lambda: _fig1(model, settings, out / "fig1"),
        "fig2": lambda: _facts(model, out / "facts", k, seed),
        "fig5": lambda: _runs(model, sweep_runs, settings.counterfact, k, seed),
        "table1": lambda: _runs(model, _eval_runs(out / "zsre"), settings.zsre, k, seed),
        "table2": lambda: _runs(model, _eval_runs(out / "counterfact"), settings.counterfact, k, seed),
        "tuning": lambda: _runs(model, sorted(p.parent for p in (out / "tuning").glob("*/runs/*/params.json")),
                                settings.counterfact, k, seed),
        "portability": lambda: portability.replay(model, settings, out / portability.FOLDER, k, seed),
        "fig6": lambda: _curie(model, settings, out / "curie", k, seed),
    }
    results = {}
    if only is not None:
        checks = {key: check for key, check in checks.items() if key in only}
    for section, check in checks.items():
        try:
            results[section] = check()
        except FactlocateError as e:  # a section that cannot be re-run here (a checkpoint not on this machine)
            results[section] = {"error": str(e)}
        log(line(section, results[section]))
    for section, why in NOT_REPLAYED.items() if only is None else ():
        results[section] = {"skipped": why}
        log(line(section, results[section]))
    write_json(out / "verify.json", {"k": k, "seed": seed, "tolerance": TOLERANCE, "sections": results})
    return results


def _eval_runs(folder: Path) -> list[Path]:
    return sorted(p.parent for p in folder.glob("*/params.json"))


def passed(result: dict) -> bool:
    return "skipped" in result or ("error" not in result and result["max_diff"] <= TOLERANCE)


def line(section: str, result: dict) -> str:
    if "error" in result:
        return f"{section}: could not be re-run ({result['error']})"
    if "skipped" in result:
        return f"{section}: not re-run ({result['skipped']})"
    verdict = "ok" if passed(result) else "DIFFERS"
    return (f"{section}: {verdict}, largest difference {result['max_diff']:.3g} over {len(result['items'])} "
            f"re-run ({result['where']})")
