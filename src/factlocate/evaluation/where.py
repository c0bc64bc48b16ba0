"""Where to edit: Hase et al.'s analysis of a localisation study, and a layer recommended from it.

Reads a study folder (`localisation.collect`: OUT/traces, OUT/sweep) and writes

    OUT/analysis.json   every number below, with the study's parameters and the cases used
    OUT/analysis.md     the R² table, best layer against traced peak, and the recommenders cross-fitted
    OUT/scatter.html    edit outcome against tracing effect, one colour per layer

    table = load_table(out)                          # rows (case, layer): effects and outcomes
    summary = analyse(out)                           # the markdown
    choice = recommend(out, "sweep", "rome", "smollm2-135m", "rome-where.yaml")

Outcomes per (case, layer): ES, PS, NS (CounterFact's, per case), S (their harmonic mean) and the rewrite and
paraphrase scores, (p_after(new) - p_before(new)) / (1 - p_before(new)) averaged over the prompts (Hase et al.).
"""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np

from factlocate.errors import FactlocateError
from factlocate.evaluation.localisation import TRACES
from factlocate.io import file_digest, read_json, write_json, write_text
from factlocate.metrics import localisation as loc

REGRESSED = ("rewrite", "paraphrase", "NS", "S")
SMALL_SWEEPS = (3, 5)  # facts per half for the cheaper sweep rules of `crossfit`
STRATEGIES = ("trace", "sweep")


def _score(nlls_pre: list[dict], nlls_post: list[dict]) -> float | None:
    """Hase et al.'s rewrite score over prompts: the share of the gap to p(new) = 1 that the edit closed."""
    values = []
    for a, b in zip(nlls_pre, nlls_post):
        before, after = math.exp(-a["target_new"]), math.exp(-b["target_new"])
        values.append((after - before) / (1 - before) if before < 1 else 0.0)
    return float(np.mean(values)) if values else None


def outcome(case: dict) -> dict:
    post, pre = case["post"], case["pre"]
    s = post["scores"]
    return {"ES": s["ES"], "PS": s["PS"], "NS": s["NS"], "S": loc.hmean([s["ES"], s["PS"], s["NS"]]),
            "rewrite": _score(pre["rewrite_prompts_probs"], post["rewrite_prompts_probs"]),
            "paraphrase": _score(pre["paraphrase_prompts_probs"], post["paraphrase_prompts_probs"])}


def sweep_table(runs: str | Path, cases: list[int] | None = None, token: str = "subject_last") -> dict:
    """{"layers", "cases", "rows"} of a sweep's runs (OUT/runs) at one key token: the layers where every case of
    `cases` (default: every case any layer holds) is edited. A run stopped for time leaves its last layer part way;
    that layer is left out."""
    by_layer = {}
    for run in sorted(Path(runs).glob(f"*-L*-{token}")):
        layer = int(run.name.rsplit("-L", 1)[1].split("-")[0])
        by_layer[layer] = {c["case_id"]: c for c in (read_json(p) for p in (run / "cases").glob("*.json"))}
    if cases is None:
        cases = sorted({c for done in by_layer.values() for c in done})
    layers = sorted(layer for layer, done in by_layer.items() if set(cases) <= set(done))
    if not cases or len(layers) < 2:
        raise FactlocateError(f"{runs} holds fewer than two layers at which every case is edited")
    rows = [{"case_id": c, "layer": layer, **outcome(by_layer[layer][c])} for c in cases for layer in layers]
    return {"layers": layers, "cases": list(cases), "rows": rows}


def load_table(out: str | Path) -> dict:
    """`sweep_table` of the study's sweep for its traced cases, each row with the case's tracing effects at its
    layer, and "effects": {trace: [case][every layer]}."""
    out = Path(out)
    traces = {c["case_id"]: c for c in (read_json(p) for p in sorted((out / "traces" / "cases").glob("*.json")))}
    table = sweep_table(out / "sweep" / "runs", list(traces))
    for r in table["rows"]:
        r.update({t: traces[r["case_id"]]["effects"][t][r["layer"]] for t in TRACES})
    return {**table, "effects": {t: [traces[c]["effects"][t] for c in table["cases"]] for t in TRACES}}


def aggregate_s(rows: list[dict]) -> float:
    """CounterFact's S x100 over a set of (case, layer) rows: the harmonic mean of mean ES, PS and NS."""
    return 100 * loc.hmean([np.mean([r[m] for r in rows]) for m in ("ES", "PS", "NS")])


def _by_case(rows: list[dict]) -> dict[int, dict[int, dict]]:
    out: dict[int, dict[int, dict]] = {}
    for r in rows:
        out.setdefault(r["case_id"], {})[r["layer"]] = r
    return out


def best_layer_of_case(per_layer: dict[int, dict]) -> int:
    """A fact's best layer: the largest S, then the largest rewrite score, then the earliest layer."""
    return max(per_layer, key=lambda layer: (per_layer[layer]["S"], per_layer[layer]["rewrite"], -layer))


def choose(rows: list[dict], strategy: str, effects: dict | None = None, layers: list[int] | None = None) -> int:
    """The layer a strategy picks from these rows: `sweep`, the best aggregate S (ties: larger mean rewrite score,
    then the earlier layer); `trace`, the largest mean MLP effect (window 10) over `layers`."""
    if strategy == "sweep":
        layers = sorted({r["layer"] for r in rows})
        score = {layer: (round(aggregate_s([r for r in rows if r["layer"] == layer]), 6),
                         np.mean([r["rewrite"] for r in rows if r["layer"] == layer]), -layer) for layer in layers}
        return max(layers, key=score.get)
    if strategy == "trace":
        mean = np.asarray(effects["mlp_w10"]).mean(axis=0)
        return max(layers, key=lambda layer: (mean[layer], -layer))
    raise FactlocateError(f"unknown strategy {strategy!r}: use {', '.join(STRATEGIES)}")


def trace_choice(out: str | Path) -> dict:
    """The trace strategy from the traces alone: the layer of the largest mean MLP effect (window 10), any layer."""
    out = Path(out)
    params = read_json(out / "traces" / "params.json")
    traces = [read_json(p) for p in sorted((out / "traces" / "cases").glob("*.json"))]
    if not traces:
        raise FactlocateError(f"{out} holds no traced case")
    effects = {"mlp_w10": [t["effects"]["mlp_w10"] for t in traces]}
    n_layers = len(traces[0]["effects"]["mlp_w10"])
    return {"model": params["model"], "dataset": params["dataset"], "cases": [t["case_id"] for t in traces],
            "n_layers": n_layers, "choice": {"trace": choose([], "trace", effects, list(range(n_layers)))},
            "mean_mlp_w10": np.asarray(effects["mlp_w10"]).mean(axis=0).tolist()}


def regressions(table: dict, n_boot: int = 1000, seed: int = 0) -> list[dict]:
    """For each outcome and tracing effect: R² of layer, trace and both, and the added R² with a fact bootstrap CI."""
    groups = list(_by_case(table["rows"]).values())
    out = []
    for y in REGRESSED:
        for t in TRACES:
            def added(gs, y=y, t=t):
                rows = [r for g in gs for r in g.values()]
                return loc.r2_table([r[y] for r in rows], [r[t] for r in rows], [r["layer"] for r in rows])["added"]
            fit = loc.r2_table([r[y] for r in table["rows"]], [r[t] for r in table["rows"]],
                               [r["layer"] for r in table["rows"]])
            out.append({"outcome": y, "effect": t, **fit, "added_ci": loc.bootstrap(groups, added, n_boot, seed)})
    return out


def peaks(table: dict) -> dict:
    """Per fact, the best edit layer against the layer of its largest MLP effect (window 10) among the swept ones."""
    layers, by_case = table["layers"], _by_case(table["rows"])
    best = [best_layer_of_case(by_case[c]) for c in table["cases"]]
    effect = np.asarray(table["effects"]["mlp_w10"])[:, layers]
    peak = loc.best_layers(effect, layers)
    same = [b == p for b, p in zip(best, peak)]
    return {"best": best, "peak": peak, "agree": float(np.mean(same)),
            "mean_abs_gap": float(np.mean([abs(b - p) for b, p in zip(best, peak)]))}


def crossfit(table: dict, config_layer: int | None, n_layers: int, n_boot: int = 1000, seed: int = 0) -> list[dict]:
    """Each rule chooses on one half of the facts (alternate cases) and is scored on the other half; the pooled
    held-out S against the oracle's (every fact at its own best layer), with a fact bootstrap CI of the ratio
    (the choices held fixed)."""
    layers, by_case = table["layers"], _by_case(table["rows"])
    cases = table["cases"]
    halves = [cases[0::2], cases[1::2]]
    index = {c: i for i, c in enumerate(cases)}
    depth = round(17 / 48 * n_layers)  # ROME's GPT-2 XL layer 17 of 48, by relative depth
    rules = {
        "sweep": lambda fit: choose([r for c in fit for r in by_case[c].values()], "sweep"),
        # the cheaper signal: the same sweep on fewer facts (its cost is one edit per fact and layer)
        **{f"sweep, {k} facts": (lambda fit, k=k: choose([r for c in fit[:k] for r in by_case[c].values()], "sweep"))
           for k in SMALL_SWEEPS if k < len(halves[1])},
        "trace": lambda fit: choose([], "trace", {"mlp_w10": [table["effects"]["mlp_w10"][index[c]] for c in fit]},
                                    layers),
        "paper's relative depth": lambda fit: min(layers, key=lambda layer: (abs(layer - depth), layer)),
    }
    if config_layer is not None and config_layer in layers:
        rules["current config"] = lambda fit: config_layer
    oracle = {c: by_case[c][best_layer_of_case(by_case[c])] for c in cases}
    out = []
    for name, rule in rules.items():
        picked = {}
        for fit, held in ((halves[0], halves[1]), (halves[1], halves[0])):
            layer = rule(fit)
            picked.update({c: (layer, by_case[c][layer]) for c in held})

        def ratio(cs):
            return aggregate_s([picked[c][1] for c in cs]) / max(aggregate_s([oracle[c] for c in cs]), 1e-9)
        out.append({"rule": name, "layers": sorted({picked[c][0] for c in cases}),
                    "S": aggregate_s([picked[c][1] for c in cases]), "oracle_S": aggregate_s(list(oracle.values())),
                    "ratio": ratio(cases), "ratio_ci": loc.bootstrap(cases, ratio, n_boot, seed)})
    return out


def validate(dev_out: str | Path, test_out: str | Path, n_boot: int = 1000, seed: int = 0) -> dict:
    """The layer rules fixed on `dev` (the study in `dev_out`), scored on held-out `test` facts (`test_out`): each
    rule's S against the oracle's (every test fact at its own best swept layer), with a CI that resamples test
    facts; also each test fact at its own traced MLP peak. Writes TEST_OUT/validation.json and validation.md."""
    dev_out, test_out = Path(dev_out), Path(test_out)
    dev = read_json(dev_out / "analysis.json") if (dev_out / "analysis.json").exists() else None
    if dev is None:
        analyse(dev_out, n_boot)
        dev = read_json(dev_out / "analysis.json")
    test = load_table(test_out)
    params = read_json(test_out / "traces" / "params.json")
    if params["dataset"].get("split") != "test" or dev["dataset"].get("split") != "dev":
        raise FactlocateError("validation scores rules fixed on a dev study against a test study: got splits "
                              f"{dev['dataset'].get('split')} and {params['dataset'].get('split')}")
    if set(dev["cases"]) & set(test["cases"]):
        raise FactlocateError("the dev and test studies share cases")
    dev_table = load_table(dev_out)
    by_case, layers, cases = _by_case(test["rows"]), test["layers"], test["cases"]
    depth = round(17 / 48 * dev["n_layers"])
    rules = {"sweep (dev)": dev["choice"]["sweep"], "trace (dev mean peak)": dev["choice"]["trace"],
             **{f"sweep, {k} dev facts": choose([r for r in dev_table["rows"] if r["case_id"] in dev["cases"][:k]],
                                               "sweep") for k in SMALL_SWEEPS if k < len(dev["cases"])},
             "paper's relative depth": min(dev["layers"], key=lambda layer: (abs(layer - depth), layer))}
    if dev.get("config_layer") is not None:
        rules["current config"] = dev["config_layer"]
    oracle = {c: by_case[c][best_layer_of_case(by_case[c])] for c in cases}
    peak = dict(zip(cases, loc.best_layers(np.asarray(test["effects"]["mlp_w10"])[:, layers], layers)))
    picks = {name: {c: by_case[c][layer] for c in cases} for name, layer in rules.items() if layer in layers}
    picks["each fact's traced peak"] = {c: by_case[c][peak[c]] for c in cases}
    out = []
    for name, picked in picks.items():
        def ratio(cs, picked=picked):
            return aggregate_s([picked[c] for c in cs]) / max(aggregate_s([oracle[c] for c in cs]), 1e-9)
        out.append({"rule": name, "layer": rules.get(name), "S": aggregate_s(list(picked.values())),
                    "oracle_S": aggregate_s(list(oracle.values())), "ratio": ratio(cases),
                    "ratio_ci": loc.bootstrap(cases, ratio, n_boot, seed) if len(cases) > 1 else None})
    result = {"model": dev["model"], "editor": dev["editor"], "dev": str(dev_out), "dev_cases": dev["cases"],
              "test_cases": cases, "test_layers": layers, "rules": out,
              "not_swept_on_test": {n: layer for n, layer in rules.items() if layer not in layers}}
    write_json(test_out / "validation.json", result)
    write_text(test_out / "validation.md", validation_markdown(result))
    return result


def _rule_cells(r: dict) -> str:
    """A validated rule's layer, S, oracle S and ratio [CI] as table cells."""
    ci = "" if r["ratio_ci"] is None else f" [{r['ratio_ci'][0]:.3f}, {r['ratio_ci'][1]:.3f}]"
    layer = "per fact" if r["layer"] is None else r["layer"]
    return f"{layer} | {r['S']:.1f} | {r['oracle_S']:.1f} | {r['ratio']:.3f}{ci}"


def validation_markdown(v: dict) -> str:
    lines = [f"# Layer rules fixed on dev, scored on {len(v['test_cases'])} test facts: {v['model']}, {v['editor']}",
             "", f"Test layers swept: {', '.join(map(str, v['test_layers']))}. The oracle puts every test fact at its "
             "own best swept layer. CIs: 95%, resampling test facts.", "",
             "| rule | layer | S | oracle S | ratio [CI] |", "|---|---:|---:|---:|---:|"]
    for r in v["rules"]:
        lines.append(f"| {r['rule']} | {_rule_cells(r)} |")
    if v["not_swept_on_test"]:
        lines += ["", "Not scored (their layer was not swept on test): " +
                  ", ".join(f"{n} (layer {layer})" for n, layer in v["not_swept_on_test"].items()) + "."]
    return "\n".join(lines) + "\n"


def layer_comparison(table: dict, chosen: int, n_boot: int = 1000, seed: int = 0) -> dict:
    """S per swept layer with a fact-bootstrap 95% CI, and S(chosen) - S(neighbour) for the swept layers next to
    the chosen one, paired over the same facts (the same resampled facts on both sides). CIs are None for a
    single fact."""
    by_case, layers, cases = _by_case(table["rows"]), table["layers"], table["cases"]

    def s_at(layer):
        return lambda cs: aggregate_s([by_case[c][layer] for c in cs])

    def ci(stat):  # one case has no spread to resample
        return loc.bootstrap(cases, stat, n_boot, seed) if len(cases) > 1 else None

    per_layer = {layer: {"S": s_at(layer)(cases), "ci": ci(s_at(layer))} for layer in layers}
    i = layers.index(chosen)
    neighbours = [layers[j] for j in (i - 1, i + 1) if 0 <= j < len(layers)]
    paired = []
    for other in neighbours:
        def gap(cs, other=other):
            return s_at(chosen)(cs) - s_at(other)(cs)
        paired.append({"layer": other, "gap": gap(cases), "ci": ci(gap)})
    return {"chosen": chosen, "per_layer": per_layer, "paired": paired}


def seconds(out: Path, layers: list[int], editor: str) -> dict:
    """Wall seconds behind a recommendation, from the run folders' clocks: the traces (the trace strategy's whole
    cost) and the edits at the analysed layers (the sweep strategy adds them). Key statistics, made once per layer
    and cached, are not in either."""
    def clock(folder: Path) -> float:
        return read_json(folder / "time.json")["seconds"] if (folder / "time.json").exists() else 0.0

    edits = sum(clock(out / "sweep" / "runs" / f"{editor}-L{layer}-subject_last") for layer in layers)
    return {"traces": clock(out / "traces"), "edits": edits}


def analyse(out: str | Path, n_boot: int = 1000) -> str:
    """Write OUT/analysis.json, analysis.md and scatter.html; return the markdown."""
    from factlocate import editors
    from factlocate.plots.localisation import scatter

    out = Path(out)
    table = load_table(out)
    params = read_json(out / "traces" / "params.json")
    model = params["model"]
    sweep_params = read_json(next((out / "sweep" / "runs").glob("*/params.json")))
    editor = sweep_params["editor"]
    n_layers = len(table["effects"]["hidden"][0])
    try:
        hp = editors.get(editor).load_hparams(model)
        config_layer = getattr(hp, "layer", None)
    except FactlocateError:
        config_layer = None
    result = {
        "model": model, "editor": editor, "dataset": params["dataset"], "cases": table["cases"],
        "layers": table["layers"], "n_layers": n_layers,
        "regressions": regressions(table, n_boot), "peaks": peaks(table),
        "per_layer": [{"layer": layer, "S": aggregate_s([r for r in table["rows"] if r["layer"] == layer]),
                       **{m: 100 * float(np.mean([r[m] for r in table["rows"] if r["layer"] == layer]))
                          for m in ("ES", "PS", "NS", "rewrite")},
                       "mlp_w10": float(np.mean([r["mlp_w10"] for r in table["rows"] if r["layer"] == layer]))}
                      for layer in table["layers"]],
        "crossfit": crossfit(table, config_layer, n_layers, n_boot),
        "choice": {s: choose(table["rows"], s, table["effects"], table["layers"]) for s in STRATEGIES},
        "config_layer": config_layer,
    }
    result["comparison"] = layer_comparison(table, result["choice"]["sweep"], n_boot)
    result["seconds"] = seconds(out, table["layers"], editor)
    write_json(out / "analysis.json", result)
    md = markdown(result)
    write_text(out / "analysis.md", md)
    write_text(out / "scatter.html", scatter(table["rows"], TRACES, REGRESSED, f"{model}: {editor}")
               .to_html(include_plotlyjs=True))
    return md


def markdown(a: dict) -> str:
    lines = [f"# Does localisation tell you where to edit? {a['model']}, {a['editor']}", "",
             f"{len(a['cases'])} known {a['dataset']['name']} `{a['dataset'].get('split', '?')}` cases, edited at "
             f"layers {', '.join(map(str, a['layers']))} (key at the last subject token). Tracing effects at the "
             "last subject token, of the true target's probability. CIs: 95%, resampling facts.", "",
             "## How much the trace explains (R²)", "",
             "| outcome | tracing effect | layer only | trace only | both | added by the trace [CI] |", "|---|---|---:|---:|---:|---:|"]
    for r in a["regressions"]:
        lo, hi = r["added_ci"]
        lines.append(f"| {r['outcome']} | {r['effect']} | {r['layer']:.3f} | {r['trace']:.3f} | {r['both']:.3f} | "
                     f"{r['added']:.3f} [{lo:.3f}, {hi:.3f}] |")
    p = a["peaks"]
    lines += ["", "## Each fact's best edit layer against its traced peak (MLP, window 10, swept layers)", "",
              f"Same layer for {100 * p['agree']:.0f}% of facts; mean gap {p['mean_abs_gap']:.1f} layers.", "",
              "## Per layer (x100; mlp_w10: mean tracing effect)", "",
              "| layer | S | ES | PS | NS | rewrite | mlp_w10 |", "|---:|---:|---:|---:|---:|---:|---:|"]
    for r in a["per_layer"]:
        lines.append(f"| {r['layer']} | {r['S']:.1f} | {r['ES']:.1f} | {r['PS']:.1f} | {r['NS']:.1f} | "
                     f"{r['rewrite']:.1f} | {r['mlp_w10']:.4f} |")
    lines += ["", "## Rules chosen on one half of the facts, scored on the other (cross-fitted on this split)", "",
              "| rule | layers chosen | held-out S | oracle S | ratio [CI] |", "|---|---|---:|---:|---:|"]
    for r in a["crossfit"]:
        lo, hi = r["ratio_ci"]
        lines.append(f"| {r['rule']} | {', '.join(map(str, r['layers']))} | {r['S']:.1f} | {r['oracle_S']:.1f} | "
                     f"{r['ratio']:.3f} [{lo:.3f}, {hi:.3f}] |")
    lines += ["", f"Chosen on all these facts: sweep → layer {a['choice']['sweep']}, trace → layer "
              f"{a['choice']['trace']}; the shipped config edits layer {a['config_layer']}.", ""]
    cmp = a["comparison"]
    lines += ["## The sweep's choice against its neighbours (S x100, 95% CI over facts; paired)", "",
              "| layer | S [CI] | S(chosen) - S(layer) [CI] |", "|---:|---:|---:|"]
    gaps = {p["layer"]: p for p in cmp["paired"]}
    for layer, v in cmp["per_layer"].items():
        g = gaps.get(int(layer))
        gap = f"{g['gap']:.1f} {ci_text(g['ci'])}" if g else ("chosen" if int(layer) == cmp["chosen"] else "")
        lines.append(f"| {layer} | {v['S']:.1f} {ci_text(v['ci'])} | {gap} |")
    lines.append("")
    return "\n".join(lines)


def ci_text(ci) -> str:
    return "[n/a]" if ci is None else f"[{ci[0]:.1f}, {ci[1]:.1f}]"


def digest(path: Path) -> str:
    return file_digest(path)


def recommend(out: str | Path, strategy: str, editor: str, model_spec: str | None, config: str | Path,
              overrides: dict | None = None) -> dict:
    """Choose a layer from the study in `out` and write the editor's config with it, the choice and its evidence.

    The config holds the hyperparameters the study's edits used, or (the trace strategy, no edits) the shipped
    config with `overrides`; the chosen layer replaces the layer, or centres a range editor's layers."""
    import yaml

    from factlocate import editors
    from factlocate.models import DEFAULT_MODEL

    out, config = Path(out), Path(config)
    if strategy == "sweep":
        analyse(out)
        evidence = out / "analysis.json"
    else:  # the trace alone: no edits needed
        evidence = write_json(out / "trace-choice.json", trace_choice(out))
    a = read_json(evidence)
    layer = a["choice"][strategy]
    runs = sorted((out / "sweep" / "runs").glob(f"{editor}-L*-subject_last/params.json"))
    if runs:  # the hyperparameters the study edited with (its --set included)
        values = read_json(runs[0])["hparams"]
    else:
        module = editors.get(editor)
        values = dataclasses.asdict(module.HParams.load(model_spec or DEFAULT_MODEL,
                                                        {**(overrides or {}), **_layer_override(module)}))
    if "layer" in values:
        values["layer"] = layer
    else:  # a range editor: the config's width, centred on the chosen layer, inside the model
        from factlocate.tracing.layer_range import centred

        values["layers"] = centred(layer, len(values["layers"]), a["n_layers"])
    head = (f"# {editor} on {a['model']}: layer chosen by `factlocate where-to-edit --strategy {strategy}`\n"
            f"# from {len(a['cases'])} {a['dataset']['name']} {a['dataset'].get('split', '?')} cases; evidence: "
            f"{evidence} (sha256 {digest(evidence)})\n")
    choice = {"strategy": strategy, "layer": layer, "evidence": str(evidence), "evidence_sha256": digest(evidence)}
    write_text(config, head + yaml.safe_dump(values, sort_keys=False))
    write_json(config.with_suffix(".evidence.json"), choice)
    return choice


def _layer_override(module) -> dict:
    """A placeholder layer, so that a config without one (default.yaml) loads; the chosen layer replaces it."""
    fields = {f.name for f in dataclasses.fields(module.HParams)}
    return {"layer": 0} if "layer" in fields else {"layers": [0]}


MARGIN_R2 = 0.05  # "the trace explains almost none of the variance beyond the layer": added R² under 5 points
NOTES_BEGIN = ("<!-- where: made by `python -m tools.where_notes` from docs/where/*/analysis.json and validation.json; "
               "a test checks it -->")
NOTES_END = "<!-- /where -->"


def hase_verdict(ci: tuple[float, float]) -> str:
    """Hase et al.'s finding on one outcome: the trace's added R² is under `MARGIN_R2` (its whole CI), or not."""
    return "holds" if ci[1] < MARGIN_R2 else "does not hold" if ci[0] >= MARGIN_R2 else "inconclusive"


def goal_text(lo: float, hi: float, goal: float = 0.95) -> str:
    """The S-ratio goal against a CI: met when the whole CI clears it, not met when none of it does."""
    return "met" if lo >= goal else "not met" if hi < goal else "inconclusive"


def notes_block(analyses: dict[str, dict], validations: dict[str, dict] | None = None) -> str:
    """The embedded models' results for notes/where-to-edit.md, from their analysis.json files (and, where a
    model has one, the validation.json of its held-out `test` study)."""
    lines = [NOTES_BEGIN, "", "| model | cases | layers | outcome | tracing effect | R² layer only | added by the "
             f"trace [95% CI] | Hase et al.'s finding (added R² < {MARGIN_R2:g}) |", "|---|---:|---|---|---|---:|---:|---|"]
    for name, a in analyses.items():
        for r in a["regressions"]:
            if r["outcome"] in ("rewrite", "S") and r["effect"] in ("hidden", "mlp_w10"):
                lo, hi = r["added_ci"]
                lines.append(f"| {name} | {len(a['cases'])} | {', '.join(map(str, a['layers']))} | {r['outcome']} | "
                             f"{r['effect']} | {r['layer']:.3f} | {r['added']:.3f} [{lo:.3f}, {hi:.3f}] | "
                             f"{hase_verdict(r['added_ci'])} |")
    lines += ["", "| model | rule (cross-fitted on dev) | layers chosen | held-out S / oracle S [95% CI] | "
              "goal: at least 0.95 |", "|---|---|---|---:|---|"]
    for name, a in analyses.items():
        for r in a["crossfit"]:
            lo, hi = r["ratio_ci"]
            lines.append(f"| {name} | {r['rule']} | {', '.join(map(str, r['layers']))} | {r['ratio']:.3f} "
                         f"[{lo:.3f}, {hi:.3f}] | {goal_text(lo, hi)} |")
    lines += ["", "| model | per-fact best layer = traced peak | mean gap (layers) | sweep's layer | trace's layer | "
              "shipped config's layer | wall s: traces (trace strategy) | wall s: edits (the sweep adds) |",
              "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, a in analyses.items():
        p, sec = a["peaks"], a.get("seconds", {})
        lines.append(f"| {name} | {100 * p['agree']:.0f}% | {p['mean_abs_gap']:.1f} | {a['choice']['sweep']} | "
                     f"{a['choice']['trace']} | {a['config_layer']} | {sec.get('traces', 0):,.0f} | "
                     f"{sec.get('edits', 0):,.0f} |")
    if validations:
        lines += ["", "| model | rule fixed on dev, scored on held-out test facts | test facts | layer | S | "
                  "oracle S | S / oracle S [95% CI] | goal: at least 0.95 |", "|---|---|---:|---:|---:|---:|---:|---|"]
        for name, v in validations.items():
            for r in v["rules"]:
                lines.append(f"| {name} | {r['rule']} | {len(v['test_cases'])} | {_rule_cells(r)} | "
                             f"{goal_text(*r['ratio_ci'])} |")
    return "\n".join(lines + ["", NOTES_END])
