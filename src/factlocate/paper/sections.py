"""The report's sections: each runs (or resumes) one existing runner and renders from its files.

A section has a `compute` step, which needs the model and fills `DIR/<folder>/` through the
resumable runner it wraps, and a `render` step, which reads only those files and returns
blocks for the page (plotly figures or markdown). A section whose run is shown by another
(Figure 3 reads Figure 2's folder) has no compute step of its own.
"""
from __future__ import annotations

import dataclasses
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from factlocate import plots
from factlocate.errors import FactlocateError
from factlocate.io import read_json, write_json
from factlocate.paper import numbers
from factlocate.paper.settings import ReportSettings

CURIE = dict(prompt="{} works in the field of", subject="Pierre Curie", target="medicine", true="physics",
             gen_prompts=("Pierre Curie often collaborated with", "Pierre Curie is best known for"), gen_length=40)


class Context:
    """The settings, the output folder and the model, loaded only when a section has work to do."""

    def __init__(self, settings: ReportSettings, out: Path, progress: bool, loader: Callable):
        self.settings, self.out, self.progress, self._loader, self._model = settings, out, progress, loader, None

    @property
    def model(self):
        if self._model is None:
            self._model = self._loader(self.settings.model)
        return self._model

    def folder(self, name: str) -> Path:
        return self.out / name


@dataclass(frozen=True)
class Section:
    key: str  # anchor on the page
    folder: str  # DIR/<folder> holds the run (and done.json once computed)
    title: str
    params: Callable[[ReportSettings], dict]  # the settings the section's results depend on
    command: Callable[[ReportSettings, Path], str]
    render: Callable[[Context], list]
    compute: Callable[[Context], None] | None = None
    paper: Callable[[], str] | None = None


# ---------------------------------------------------------------- shared pieces


def _q(text: str) -> str:
    return shlex.quote(text)


def _run_spec(s: ReportSettings):
    from factlocate.tracing import RunSpec

    return RunSpec(samples=s.samples, noise=s.noise, seed=s.seed)


def _trace_args(s: ReportSettings) -> str:
    return f"--samples {s.samples} --noise {s.noise} --window {s.window} --seed {s.seed}"


def _tracing_params(s: ReportSettings) -> dict:
    return dict(model=s.model, facts=s.facts, facts_file=s.facts_file, samples=s.samples, noise=s.noise,
                window=s.window, seed=s.seed)


def _facts_spec(s: ReportSettings):
    from factlocate.tracing.facts import FactSetSpec

    return FactSetSpec(model=s.model, facts=s.facts_file or "known_1000.json", sever=("mlp", "attn"),
                       window=s.window, run=_run_spec(s))


def _facts(s: ReportSettings) -> list[dict]:
    from factlocate.tracing.facts import load_facts

    return load_facts(s.facts_file)


def _summary(ctx: Context) -> dict:
    from factlocate.tracing.facts import summarize

    ids = [f["known_id"] for f in _facts(ctx.settings)]
    return summarize(ctx.folder("facts"), ids, n=ctx.settings.facts, write=False)


def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


# ---------------------------------------------------------------- Figures 2 and 3: fact-set tracing


def _facts_compute(ctx: Context) -> None:
    from factlocate.tracing.facts import run_facts

    run_facts(ctx.model, ctx.folder("facts"), _facts_spec(ctx.settings), n=ctx.settings.facts,
              facts=_facts(ctx.settings), progress=ctx.progress)


def _facts_render(ctx: Context) -> list:
    summary = _summary(ctx)
    if not summary["n_traced"]:
        return ["No fact was answered correctly, so nothing was traced."]
    rows = ["| kind | ATE (95% CI) | best AIE, last subject token (layer) | best AIE, last token (layer) |",
            "|---|---:|---:|---:|"]
    for kind, k in summary["kinds"].items():
        rows.append(f"| {kind} | {100 * k['ate']:.1f} ± {100 * k['ate_ci95']:.1f} | "
                    f"{100 * k['best_last_subject_aie']:.1f} ({k['best_last_subject_layer']}) | "
                    f"{100 * k['best_last_token_aie']:.1f} ({k['best_last_token_layer']}) |")
    head = (f"{summary['n_traced']} known facts traced ({summary['n_skipped']} skipped before them: the model's "
            "top answer was not the expected attribute). Effects x100, as probabilities of the answer.")
    return [head, "\n".join(rows), plots.average_heatmaps(summary), plots.average_lines(summary)]


def _tracing_paper() -> str:
    return numbers.TRACING["model"] + ":\n\n" + "\n".join(
        f"- {k}: {v}" for k, v in numbers.TRACING.items() if k != "model")


def _severed_render(ctx: Context) -> list:
    summary = _summary(ctx)
    sev = summary.get("severed")
    if not sev:
        return ["No severed traces in this run."]
    curves = {"hidden state alone": sev["aie_unsevered"],
              **{f"{k} severed": v["aie"] for k, v in sev["by_kind"].items()}}
    n_layers = len(sev["aie_unsevered"])
    early = max(1, n_layers // 2)
    rows = [f"| curve | peak AIE (layer) | mean AIE, layers 0-{early - 1} |", "|---|---:|---:|"]
    for name, aie in curves.items():
        aie = [float(a) for a in aie]
        peak = max(range(n_layers), key=lambda i: aie[i])
        rows.append(f"| {name} | {100 * aie[peak]:.1f} ({peak}) | {100 * sum(aie[:early]) / early:.1f} |")
    return ["Last subject token, effects x100.", "\n".join(rows), plots.severed_bars(summary)]


# ---------------------------------------------------------------- Figure 1: one fact


def _fig1_fact(ctx: Context) -> tuple[str, str]:
    s = ctx.settings
    if s.fig1_prompt is not None:
        return s.fig1_prompt, s.fig1_subject
    for fact in _facts(s):
        path = ctx.folder("facts") / "cases" / f"known_{fact['known_id']}.json"
        if path.exists() and read_json(path).get("correct_prediction"):
            return fact["prompt"], fact["subject"]
    raise FactlocateError("Figure 1 takes the first fact Figure 2 traced, and none was traced")


def _fig1_compute(ctx: Context) -> None:
    from factlocate.tracing import GridSpec, trace_kinds
    from factlocate.tracing.core import KINDS

    prompt, subject = _fig1_fact(ctx)
    grids = [GridSpec(k, ctx.settings.window) for k in KINDS]
    results = trace_kinds(ctx.model, prompt, subject, grids, _run_spec(ctx.settings), progress=ctx.progress)
    for key, r in results.items():
        r.save(ctx.folder("fig1") / f"trace_{key}.json")


def _fig1_render(ctx: Context) -> list:
    from factlocate.tracing.core import KINDS
    from factlocate.tracing.result import TraceResult

    results = {k: TraceResult.load(ctx.folder("fig1") / f"trace_{k}.json") for k in KINDS}
    r = results["hidden"]
    return [f"Prompt {r.prompt!r}, subject {r.subject!r}: the model answers {r.answer.strip()!r} with p "
            f"{r.high_score:.3f}, {r.low_score:.3f} with the subject corrupted.", plots.trace_heatmaps(results)]


def _fig1_command(s: ReportSettings, out: Path) -> str:
    prompt = s.fig1_prompt or "<the first fact Figure 2 traced>"
    subject = s.fig1_subject or "<its subject>"
    return (f"factlocate trace --model {s.model} --prompt {_q(prompt)} --subject {_q(subject)} --kind all "
            f"{_trace_args(s)} --out {out}/fig1")


# ---------------------------------------------------------------- Figure 5: layer x token sweep


def _sweep_layers(ctx: Context) -> list[int]:
    from factlocate import arch

    return list(ctx.settings.sweep_layers or range(arch.n_layers(ctx.model)))


def _sweep_compute(ctx: Context) -> None:
    from factlocate import datasets
    from factlocate.evaluation import sweep

    s = ctx.settings
    ds = datasets.load(s.counterfact)
    records = ds.select(0, s.sweep_cases)
    sweep.run(ctx.model, ds, records, s.sweep_editor, _sweep_layers(ctx), None, ctx.folder("sweep"),
              s.overrides.get(s.sweep_editor, {}), progress=ctx.progress)


def _config_layer(s: ReportSettings) -> str:
    from factlocate import editors

    try:
        hp = editors.get(s.sweep_editor).HParams.load(s.model)
    except FactlocateError as e:
        return f"n/a ({e})"
    return str(getattr(hp, "layer", None) if hasattr(hp, "layer") else getattr(hp, "layers", None))


def _sweep_render(ctx: Context) -> list:
    from factlocate.evaluation import sweep

    s = ctx.settings
    grid, tokens, layers = sweep.load_grid(ctx.folder("sweep"))
    rows = ["| layer | ES | PS | NS | S |", "|---:|---:|---:|---:|---:|"]
    for layer in layers:
        vals = [grid[m].get(("subject_last", layer)) for m in sweep.METRICS]
        rows.append(f"| {layer} | " + " | ".join("n/a" if v is None else f"{v:.1f}" for v in vals) + " |")
    scored = [(grid["S"][("subject_last", l)], l) for l in layers if grid["S"].get(("subject_last", l)) is not None]
    best = max(scored)[1] if scored else None
    text = (f"{s.sweep_editor} at the last subject token, {s.sweep_cases} CounterFact cases (x100; S is the "
            f"harmonic mean of ES, PS and NS). Best layer by S: **{best}**; the shipped config edits layer "
            f"{_config_layer(s)}.")
    return [text, "\n".join(rows), sweep.figure(grid, tokens, layers, s.sweep_editor)]


def _sweep_command(s: ReportSettings, out: Path) -> str:
    layers = f" --layer {','.join(map(str, s.sweep_layers))}" if s.sweep_layers else ""
    return (f"factlocate sweep --editor {s.sweep_editor} --model {s.model} --dataset {s.counterfact} "
            f"--n {s.sweep_cases}{layers} --out {out}/sweep")


# ---------------------------------------------------------------- Tables 1 and 2


def _eval_compute(ctx: Context, folder: str, dataset: str, names: tuple[str, ...], generation: bool) -> None:
    from factlocate import datasets
    from factlocate.evaluation import runner

    s = ctx.settings
    ds = datasets.load(dataset)
    records = ds.select(0, s.eval_cases)
    params = runner.EvalParams(generation=generation and ds.kind == "counterfact")
    skipped = {}
    for name in names:
        try:
            runner.run(ctx.model, ds, records, name, ctx.folder(folder), params, s.overrides.get(name, {}), None,
                       progress=ctx.progress)
        except FactlocateError as e:
            skipped[name] = str(e)
    write_json(ctx.folder(folder) / "skipped.json", skipped)


def _eval_render(ctx: Context, folder: str) -> list:
    from factlocate.evaluation import report

    md = report.write_summary(ctx.folder(folder), figures=False)
    skipped = read_json(ctx.folder(folder) / "skipped.json") if (ctx.folder(folder) / "skipped.json").exists() else {}
    blocks = ["\n".join(line for line in md.splitlines() if not line.startswith("#"))]
    if skipped:
        blocks.append("Not run: " + "; ".join(f"{k} ({_md_cell(v)})" for k, v in skipped.items()))
    return blocks


def _eval_command(s: ReportSettings, out: Path, folder: str, dataset: str, names, generation: bool) -> str:
    flags = "" if generation else " --no-generation"
    return (f"factlocate eval --dataset {dataset} --editor {','.join(names)} --model {s.model} --n {s.eval_cases}"
            f"{flags} --out {out}/{folder}")


def _table2_paper() -> str:
    return "\n\n".join(numbers.table(numbers.TABLE2_COLUMNS, rows, name) for name, rows in numbers.TABLE2.items())


def _table1_paper() -> str:
    return "\n\n".join(numbers.table(numbers.TABLE1_COLUMNS, rows, name) for name, rows in numbers.TABLE1.items())


# ---------------------------------------------------------------- Figure 6: Pierre Curie


def _curie_compute(ctx: Context) -> None:
    from factlocate.editors.base import EditRequest
    from factlocate.evaluation import runner
    from factlocate.generate import generate
    from factlocate.identity import identity

    s, folder, model = ctx.settings, ctx.folder("curie"), ctx.model
    prompts, length = list(CURIE["gen_prompts"]), CURIE["gen_length"]
    if not (folder / "unedited.json").exists():
        write_json(folder / "unedited.json", {"editor": "unedited", "generations": generate(
            model, prompts, max_length=length, seed=s.seed)})
    request = EditRequest(CURIE["prompt"], CURIE["subject"], CURIE["target"], target_true=CURIE["true"])
    skipped = {}
    for name in s.curie_editors:
        if (folder / f"{name}.json").exists():
            continue
        try:
            module, hp = runner.editor_and_hparams(name, identity(model).spec, s.overrides.get(name, {}))
            torch.manual_seed(s.seed)
            result = module.compute_edit(model, [request], hp, progress=False)
        except FactlocateError as e:
            skipped[name] = str(e)
            continue
        with result.applied(model):
            after = generate(model, prompts, max_length=length, seed=s.seed)
        write_json(folder / f"{name}.json", {"editor": name, "generations": after,
                                             "probs_after": result.probs_after, "hparams": result.hparams})
    write_json(folder / "skipped.json", skipped)


def _curie_render(ctx: Context) -> list:
    folder = ctx.folder("curie")
    names = ["unedited", *ctx.settings.curie_editors]
    prompts = CURIE["gen_prompts"]
    rows = ["| editor | p(medicine) after | " + " | ".join(_md_cell(p) for p in prompts) + " |",
            "|---|---:|" + "---|" * len(prompts)]
    for name in names:
        path = folder / f"{name}.json"
        if not path.exists():
            continue
        run = read_json(path)
        p = (run.get("probs_after") or [{}])[0].get("new")
        rows.append(f"| {name} | {'' if p is None else f'{p:.3f}'} | " +
                    " | ".join(_md_cell(g) for g in run["generations"]) + " |")
    skipped = read_json(folder / "skipped.json") if (folder / "skipped.json").exists() else {}
    blocks = [f"Rewrite: {CURIE['prompt'].format(CURIE['subject'])} {CURIE['true']} -> {CURIE['target']}; "
              f"{CURIE['gen_length']} tokens sampled (top-k 5, seed {ctx.settings.seed}).", "\n".join(rows)]
    if skipped:
        blocks.append("Not run: " + "; ".join(f"{k} ({_md_cell(v)})" for k, v in skipped.items()))
    return blocks


def _curie_command(s: ReportSettings, out: Path) -> str:
    gens = " ".join(f"--gen-prompt {_q(p)}" for p in CURIE["gen_prompts"])
    return (f"factlocate edit --editor EDITOR --model {s.model} --subject {_q(CURIE['subject'])} "
            f"--prompt {_q(CURIE['prompt'])} --target {CURIE['target']} --target-true {CURIE['true']} --generate "
            f"--gen-length {CURIE['gen_length']} {gens} --seed {s.seed}")


# ---------------------------------------------------------------- sequential editing


def _sequential_compute(ctx: Context) -> None:
    from factlocate import datasets
    from factlocate.evaluation import sequential

    s = ctx.settings
    ds = datasets.load(s.sequential_dataset)
    for editor, edits, batch, log_every in s.sequential:
        params = sequential.SequentialParams(edits=edits, batch=batch, log_every=log_every)
        sequential.run(ctx.model, ds, ds.records, editor, ctx.folder("sequential"), params,
                       s.overrides.get(editor, {}), progress=ctx.progress)


def _sequential_render(ctx: Context) -> list:
    from factlocate.evaluation import sequential

    md = sequential.write_report(ctx.folder("sequential"))
    return ["\n".join(line for line in md.splitlines() if not line.startswith("#")),
            sequential.curves(sequential.load_runs(ctx.folder("sequential")))]


def _sequential_command(s: ReportSettings, out: Path) -> str:
    return "\n".join(f"factlocate eval --sequential --editor {e} --edits {n} --batch {b} --log-every {k} "
                     f"--model {s.model} --dataset {s.sequential_dataset} --out {out}/sequential"
                     for e, n, b, k in s.sequential)


# ---------------------------------------------------------------- the sections, in page order


def _cf(s):
    return ("counterfact", s.counterfact, s.counterfact_editors, s.generation)


def _zs(s):
    return ("zsre", s.zsre, s.zsre_editors, False)


SECTIONS = (
    Section("fig1", "fig1", "Figure 1: one fact's causal traces",
            lambda s: {**_tracing_params(s), "prompt": s.fig1_prompt, "subject": s.fig1_subject},
            _fig1_command, _fig1_render, _fig1_compute),
    Section("fig2", "facts", "Figure 2: average indirect effects over known facts", _tracing_params,
            lambda s, out: f"factlocate trace-facts --model {s.model} --n {s.facts} --sever mlp,attn "
                           + (f"--facts {s.facts_file} " if s.facts_file else "") + f"{_trace_args(s)} --out {out}/facts",
            _facts_render, _facts_compute, _tracing_paper),
    Section("fig3", "facts", "Figure 3: severed paths at the last subject token", _tracing_params,
            lambda s, out: f"(the run of Figure 2) factlocate trace-facts ... --sever mlp,attn --out {out}/facts",
            _severed_render, None, lambda: numbers.SEVERED),
    Section("fig5", "sweep", "Figure 5: ROME's edit layer and key token",
            lambda s: dict(model=s.model, editor=s.sweep_editor, cases=s.sweep_cases, layers=s.sweep_layers,
                           dataset=s.counterfact, overrides=s.overrides.get(s.sweep_editor, {})),
            _sweep_command, _sweep_render, _sweep_compute, lambda: numbers.SWEEP),
    Section("table1", "zsre", "Table 1: zsRE",
            lambda s: dict(model=s.model, n=s.eval_cases, dataset=s.zsre, editors=s.zsre_editors,
                           overrides=s.overrides),
            lambda s, out: _eval_command(s, out, *_zs(s)), lambda ctx: _eval_render(ctx, "zsre"),
            lambda ctx: _eval_compute(ctx, *_zs(ctx.settings)), _table1_paper),
    Section("table2", "counterfact", "Table 2: CounterFact",
            lambda s: dict(model=s.model, n=s.eval_cases, dataset=s.counterfact, editors=s.counterfact_editors,
                           generation=s.generation, overrides=s.overrides),
            lambda s, out: _eval_command(s, out, *_cf(s)), lambda ctx: _eval_render(ctx, "counterfact"),
            lambda ctx: _eval_compute(ctx, *_cf(ctx.settings)), _table2_paper),
    Section("fig6", "curie", "Figure 6: generations after rewriting Pierre Curie's field",
            lambda s: dict(model=s.model, editors=s.curie_editors, seed=s.seed, overrides=s.overrides),
            _curie_command, _curie_render, _curie_compute, lambda: numbers.CURIE),
    Section("sequential", "sequential", "Sequential editing: damage as edits accumulate",
            lambda s: dict(model=s.model, runs=s.sequential, dataset=s.sequential_dataset, overrides=s.overrides),
            _sequential_command, _sequential_render, _sequential_compute, lambda: numbers.SEQUENTIAL),
)
# Figure 1 takes its fact from Figure 2's run, so the fact set is traced first.
COMPUTE_ORDER = ("fig2", "fig1", "fig5", "table1", "table2", "fig6", "sequential")


def params_json(section: Section, s: ReportSettings) -> dict:
    import json

    return json.loads(json.dumps(section.params(s), default=str))


def asdict(s: ReportSettings) -> dict:
    return dataclasses.asdict(s)
