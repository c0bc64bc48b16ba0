"""Report sections on editing: Figure 5 (layer sweep), Tables 1 and 2, Figure 6 (Pierre Curie), sequential editing."""
from __future__ import annotations

from pathlib import Path

import torch

from factlocate.errors import FactlocateError
from factlocate.io import read_json, write_json
from factlocate.paper import numbers, training, tuning
from factlocate.paper.context import Context, md_cell, q
from factlocate.paper.settings import ReportSettings

CURIE = dict(prompt="{} works in the field of", subject="Pierre Curie", target="medicine", true="physics",
             gen_prompts=("Pierre Curie often collaborated with", "Pierre Curie is best known for"), gen_length=40,
             # the paper's check that an unrelated physicist keeps his field: the first of these the unedited
             # model places in physics rather than medicine
             unrelated=("Robert Millikan", "Max Planck", "Niels Bohr", "Albert Einstein"))


def unrelated_probs(model, subject: str) -> dict:
    """p(medicine) and p(physics) after "<subject> works in the field of" (teacher-forced, per token)."""
    from factlocate.scoring import target_prob

    text = CURIE["prompt"].format(subject)
    return {"subject": subject, "new": target_prob(model, text, CURIE["target"]),
            "true": target_prob(model, text, CURIE["true"])}


def unrelated_subject(model) -> str | None:
    """The unrelated physicist the check uses: the first the unedited model knows as one (None: none of them)."""
    for subject in CURIE["unrelated"]:
        probs = unrelated_probs(model, subject)
        if probs["true"] > probs["new"]:
            return subject
    return None


# ---------------------------------------------------------------- Figure 5: layer x token sweep


def sweep_layers(ctx: Context) -> list[int]:
    from factlocate import arch

    return list(ctx.settings.sweep_layers or range(arch.n_layers(ctx.model)))


OTHER_EVERY = 3  # Figure 5: the key tokens other than the last subject token at every third swept layer


def sweep_compute(ctx: Context) -> None:
    """Figure 5 on the `dev` split: the first `sweep_cases` dev cases the model knows, the last subject token at
    every swept layer and the other key tokens at every third (`factlocate sweep --split dev --known`)."""
    from factlocate import datasets
    from factlocate.evaluation import localisation, sweep

    s = ctx.settings
    ds = datasets.load(s.counterfact)
    records, _ = localisation.known_cases(ctx.model, ds.split("dev"), s.sweep_cases)
    sweep.run(ctx.model, ds, records, s.sweep_editor, sweep_layers(ctx), None, ctx.folder("sweep"),
              s.overrides.get(s.sweep_editor, {}), progress=ctx.progress, split="dev",
              cells=sweep.grid_cells(sweep_layers(ctx), None, OTHER_EVERY), other_cases=s.sweep_other_cases)


def config_layer(s: ReportSettings) -> str:
    from factlocate import editors

    try:
        hp = editors.get(s.sweep_editor).load_hparams(s.model)
    except FactlocateError as e:
        return f"n/a ({e})"
    return str(getattr(hp, "layer", None) if hasattr(hp, "layer") else getattr(hp, "layers", None))


def sweep_render(ctx: Context) -> list:
    from factlocate.evaluation import sweep, where
    from factlocate.plots.evaluation import sweep_heatmaps

    s = ctx.settings
    grid, tokens, layers = sweep.load_grid(ctx.folder("sweep"))
    try:
        table = where.sweep_table(ctx.folder("sweep") / "runs")
    except FactlocateError:  # a single swept layer: no comparison
        table = {"cases": [], "rows": []}
    best = where.choose(table["rows"], "sweep") if table["rows"] else None
    cmp = where.layer_comparison(table, best) if best is not None else {"per_layer": {}, "paired": []}
    gaps = {p["layer"]: p for p in cmp["paired"]}
    rows = ["| layer | ES | PS | NS | S [95% CI] | S(best) - S(layer), paired [95% CI] |",
            "|---:|---:|---:|---:|---:|---:|"]
    for layer in layers:
        vals = [grid[m].get(("subject_last", layer)) for m in ("ES", "PS", "NS")]
        ci = cmp["per_layer"].get(layer)
        s_cell = "n/a" if ci is None else f"{ci['S']:.1f} {where.ci_text(ci['ci'])}"
        g = gaps.get(layer)
        gap = "best" if layer == best else "" if g is None else f"{g['gap']:.1f} {where.ci_text(g['ci'])}"
        rows.append(f"| {layer} | " + " | ".join("n/a" if v is None else f"{v:.1f}" for v in vals) +
                    f" | {s_cell} | {gap} |")
    split = read_json(next((ctx.folder("sweep") / "runs").glob("*/params.json")))["dataset"].get("split", "?")
    text = (f"{s.sweep_editor} at the last subject token on {len(table['cases'])} CounterFact `{split}` cases the "
            f"model knows (x100; S is the harmonic mean of ES, PS and NS; CIs resample cases). Best layer by S: "
            f"**{best}**, against its swept neighbours in the last column; the shipped config edits layer "
            f"{config_layer(s)}. The other key tokens are swept at every {OTHER_EVERY}rd layer"
            + ("." if s.sweep_other_cases is None else f", on the first {s.sweep_other_cases} of these cases."))
    return [text, "\n".join(rows), sweep_heatmaps(grid, tokens, layers, s.sweep_editor)]


def sweep_command(s: ReportSettings, out: Path) -> str:
    layers = f" --layer {','.join(map(str, s.sweep_layers))}" if s.sweep_layers else ""
    layers += "" if s.sweep_other_cases is None else f" --other-cases {s.sweep_other_cases}"
    return (f"factlocate sweep --editor {s.sweep_editor} --model {s.model} --dataset {s.counterfact} --split dev "
            f"--known --n {s.sweep_cases}{layers} --other-every {OTHER_EVERY} --out {out}/sweep")


# ---------------------------------------------------------------- Tables 1 and 2


def column_params(s: ReportSettings, kind: str) -> dict:
    """The columns past teacher forcing a table adds (section params; none: the params the older pages recorded)."""
    out = {"generated_columns": True} if s.generated_columns else {}
    if s.portability.get(kind):
        out["portability"] = s.portability[kind]
    return out


def page_overrides(s: ReportSettings, name: str, out: Path) -> dict:
    """An editor's hyperparameters on the page: the settings' overrides, the page's tuned values and the page's
    trained checkpoint."""
    return {**tuning.chosen(s, name, out), **training.overrides(s, name, out)}


def extra_columns(model, ds, run_folder: Path, s: ReportSettings, progress: bool) -> None:
    """Score a finished table run again from its stored deltas: generated success, and portability."""
    from factlocate.evaluation import rescore
    from factlocate.metrics import generated, portability

    if s.generated_columns:
        rescore.rescore(model, ds, run_folder, "generated", generated.record_scores, progress)
    if s.portability.get(ds.kind):
        hops = portability.one_hop(read_json(s.portability[ds.kind]), ds.kind)
        rescore.rescore(model, ds, run_folder, "portability", portability.record_metric(hops, ds.kind), progress)


def eval_compute(ctx: Context, folder: str, dataset: str, names: tuple[str, ...], generation: bool) -> None:
    from factlocate import datasets
    from factlocate.evaluation import runner

    s = ctx.settings
    ds = datasets.load(dataset)
    records = ds.split("test")[: s.eval_cases]  # the tables report `test` only
    params = runner.EvalParams(generation=generation and ds.kind == "counterfact")
    skipped = {}
    for name in names:
        try:
            run = runner.run(ctx.model, ds, records, name, ctx.folder(folder), params,
                             page_overrides(s, name, ctx.out), None, progress=ctx.progress, split="test")
        except FactlocateError as e:
            skipped[name] = str(e)
            continue
        extra_columns(ctx.model, ds, run, s, ctx.progress)
    write_json(ctx.folder(folder) / "skipped.json", skipped)


def not_run(folder: Path) -> list[str]:
    """A line naming the editors a section could not run (from its skipped.json), or nothing."""
    path = folder / "skipped.json"
    skipped = read_json(path) if path.exists() else {}
    return ["Not run: " + "; ".join(f"{k} ({md_cell(v)})" for k, v in skipped.items())] if skipped else []


def still_to_run(short: list[str]) -> list[str]:
    """The line naming what an unfinished section has left to run, or nothing."""
    return ["Still to run: " + ", ".join(short) + "."] if short else []


def eval_render(ctx: Context, folder: str, names: tuple[str, ...] = ()) -> list:
    """The table in the order of `names` (the settings' editors), then the editors' notes."""
    from factlocate.evaluation import report

    md = report.write_summary(ctx.folder(folder), figures=False, order=names)
    blocks = ["\n".join(line for line in md.splitlines() if not line.startswith("#"))]
    return blocks + not_run(ctx.folder(folder))


def eval_partial(ctx: Context, folder: str, names: tuple[str, ...]) -> list:
    """An unfinished table: the rows its folder holds, and the editors still short of n cases."""
    out = ctx.folder(folder)
    if not any(out.glob("*/cases/*.json")):
        return []
    n = ctx.settings.eval_cases
    cases = {name: len(list((out / name / "cases").glob("*.json"))) for name in names}  # counted, not parsed
    short = [f"{name} ({cases[name]} of {n} cases)" if cases[name] else name
             for name in names if name != "unedited" and cases[name] < n]
    return eval_render(ctx, folder, names) + still_to_run(short)


def eval_command(s: ReportSettings, out: Path, folder: str, dataset: str, names, generation: bool) -> str:
    from factlocate import datasets

    flags = "" if generation else " --no-generation"
    command = (f"factlocate eval --dataset {dataset} --split test --editor {','.join(names)} --model {s.model} "
               f"--n {s.eval_cases}{flags} --out {out}/{folder}")
    runs = " ".join(f"{out}/{folder}/{n}" for n in names if n != "unedited")
    kind = dataset.partition(":")[0].removesuffix("-sample")
    kind = kind if kind in datasets.KINDS else folder
    if s.generated_columns:
        command += f" && factlocate eval-rescore {runs} --model {s.model} --metric generated"
    if s.portability.get(kind):
        command += (f" && factlocate eval-rescore {runs} --model {s.model} --metric portability "
                    f"--portability {q(s.portability[kind])}")
    return command


def table2_paper() -> str:
    return "\n\n".join(numbers.table(numbers.TABLE2_COLUMNS, rows, name) for name, rows in numbers.TABLE2.items())


def table1_paper() -> str:
    return "\n\n".join(numbers.table(numbers.TABLE1_COLUMNS, rows, name) for name, rows in numbers.TABLE1.items())


# ---------------------------------------------------------------- Figure 6: Pierre Curie


def curie_compute(ctx: Context) -> None:
    from factlocate.generate import generate

    s, folder, model = ctx.settings, ctx.folder("curie"), ctx.model
    prompts, length = list(CURIE["gen_prompts"]), CURIE["gen_length"]
    if not (folder / "unedited.json").exists():
        unrelated = unrelated_subject(model)
        write_json(folder / "unedited.json", {"editor": "unedited", "generations": generate(
            model, prompts, max_length=length, seed=s.seed), "unrelated_subject": unrelated,
            "unrelated": unrelated_probs(model, unrelated) if unrelated else None})
    skipped = {}
    for name in s.curie_editors:
        if (folder / f"{name}.json").exists():
            continue
        try:
            write_json(folder / f"{name}.json",
                       curie_edit(model, s, name, ctx.out, read_json(folder / "unedited.json").get("unrelated_subject")))
        except FactlocateError as e:
            skipped[name] = str(e)
    write_json(folder / "skipped.json", skipped)


def curie_edit(model, s: ReportSettings, name: str, out: Path, unrelated: str | None = None) -> dict:
    """One editor's Figure 6 row: Pierre Curie's field rewritten, then the seeded generations and the unrelated
    physicist's field (also `--verify`'s)."""
    from factlocate.editors.base import EditRequest
    from factlocate.evaluation import runner
    from factlocate.generate import generate
    from factlocate.identity import identity

    request = EditRequest(CURIE["prompt"], CURIE["subject"], CURIE["target"], target_true=CURIE["true"])
    module, hp = runner.editor_and_hparams(name, identity(model).spec, page_overrides(s, name, out))
    torch.manual_seed(s.seed)
    result = module.compute_edit(model, [request], hp, progress=False)
    with result.applied(model):
        after = generate(model, list(CURIE["gen_prompts"]), max_length=CURIE["gen_length"], seed=s.seed)
        other = unrelated_probs(model, unrelated) if unrelated else None
    return {"editor": name, "generations": after, "probs_after": result.probs_after, "hparams": result.hparams,
            **({"unrelated": other} if other else {})}


def curie_render(ctx: Context) -> list:
    folder = ctx.folder("curie")
    names = ["unedited", *ctx.settings.curie_editors]
    prompts = CURIE["gen_prompts"]
    base = read_json(folder / "unedited.json") if (folder / "unedited.json").exists() else {}
    other = base.get("unrelated_subject")  # None on pages made before the unrelated-subject check
    head = f" {other}: p(medicine) / p(physics) |" if other else ""
    rows = ["| editor | p(medicine) after |" + head + " " + " | ".join(md_cell(p) for p in prompts) + " |",
            "|---|---:|" + ("---:|" if other else "") + "---|" * len(prompts)]
    for name in names:
        path = folder / f"{name}.json"
        if not path.exists():
            continue
        run = read_json(path)
        p = (run.get("probs_after") or [{}])[0].get("new")
        u = run.get("unrelated")
        cell = (f" {u['new']:.3f} / {u['true']:.3f} |" if u else " |") if other else ""
        rows.append(f"| {name} | {'' if p is None else f'{p:.3f}'} |{cell} " +
                    " | ".join(md_cell(g) for g in run["generations"]) + " |")
    blocks = [f"Rewrite: {CURIE['prompt'].format(CURIE['subject'])} {CURIE['true']} -> {CURIE['target']}; "
              f"{CURIE['gen_length']} tokens sampled (top-k 5, seed {ctx.settings.seed})."
              + (f" The unrelated physicist, {other}, should keep physics: {CURIE['prompt'].format(other)} ..."
                 if other else ""), "\n".join(rows)]
    return blocks + not_run(folder)


def curie_partial(ctx: Context) -> list:
    folder = ctx.folder("curie")
    return curie_render(ctx) if (folder / "unedited.json").exists() else []


def curie_command(s: ReportSettings, out: Path) -> str:
    gens = " ".join(f"--gen-prompt {q(p)}" for p in CURIE["gen_prompts"])
    return (f"factlocate edit --editor EDITOR --model {s.model} --subject {q(CURIE['subject'])} "
            f"--prompt {q(CURIE['prompt'])} --target {CURIE['target']} --target-true {CURIE['true']} --generate "
            f"--gen-length {CURIE['gen_length']} {gens} --seed {s.seed}")


# ---------------------------------------------------------------- sequential editing


def sequential_compute(ctx: Context) -> None:
    from factlocate import datasets
    from factlocate.evaluation import sequential

    s = ctx.settings
    ds = datasets.load(s.sequential_dataset)
    for editor, edits, batch, log_every in s.sequential:
        params = sequential.SequentialParams(edits=edits, batch=batch, log_every=log_every,
                                             portability=s.portability.get("counterfact"),
                                             leave_out=s.sequential_leave_out)
        sequential.run(ctx.model, ds, ds.records, editor, ctx.folder("sequential"), params,
                       page_overrides(s, editor, ctx.out), progress=ctx.progress)


def sequential_render(ctx: Context) -> list:
    from factlocate.evaluation import sequential
    from factlocate.plots.sequential import sequential_curves

    md = sequential.write_report(ctx.folder("sequential"))
    lines = [f"**{line[3:]}**" if line.startswith("## ") else line  # the page's own headings are h2
             for line in md.splitlines() if not line.startswith("# ")]
    return ["\n".join(lines),
            sequential_curves(sequential.load_runs(ctx.folder("sequential")))]


def sequential_partial(ctx: Context) -> list:
    """The runs' curves so far, and the settings' runs not yet finished (with how many edits each has made)."""
    from factlocate.evaluation import sequential

    folder = ctx.folder("sequential")
    runs = sequential.load_runs(folder)
    if not any(r["logs"] for r in runs):
        return []
    made = {r["name"]: max(x["edits"] for x in r["logs"]) for r in runs if r["logs"]}
    short = [f"{e} ({made[e]} of {n} edits)" if made.get(e) else e
             for e, n, _, _ in ctx.settings.sequential if not (folder / e / "done.json").exists()]
    return sequential_render(ctx) + still_to_run(short)


def sequential_command(s: ReportSettings, out: Path) -> str:
    extra = "".join(f" --{flag} {q(value)}" for flag, value in (("portability", s.portability.get("counterfact")),
                                                              ("leave-out", s.sequential_leave_out)) if value)
    return "\n".join(f"factlocate eval --sequential --editor {e} --edits {n} --batch {b} --log-every {k} "
                     f"--model {s.model} --dataset {s.sequential_dataset}{extra} --out {out}/sequential"
                     for e, n, b, k in s.sequential)
