"""Report sections on causal tracing: Figure 1 (one fact), Figure 2 (fact-set AIE) and Figure 3 (severed paths)."""
from __future__ import annotations

from pathlib import Path

from factlocate import plots
from factlocate.errors import FactlocateError
from factlocate.io import read_json
from factlocate.paper import numbers
from factlocate.paper.context import Context, q
from factlocate.paper.settings import ReportSettings


def run_spec(s: ReportSettings):
    from factlocate.tracing import RunSpec

    return RunSpec(samples=s.samples, noise=s.noise, seed=s.seed)


def trace_args(s: ReportSettings) -> str:
    return f"--samples {s.samples} --noise {s.noise} --window {s.window} --seed {s.seed}"


def tracing_params(s: ReportSettings) -> dict:
    return dict(model=s.model, facts=s.facts, facts_file=s.facts_file, samples=s.samples, noise=s.noise,
                window=s.window, seed=s.seed)


def facts_spec(s: ReportSettings):
    from factlocate.tracing.facts import FactSetSpec

    return FactSetSpec(model=s.model, facts=s.facts_file or "known_1000.json", sever=("mlp", "attn"),
                       window=s.window, run=run_spec(s))


def known_facts(s: ReportSettings) -> list[dict]:
    from factlocate.datasets.known_facts import load_facts

    return load_facts(s.facts_file)


def fact_set_summary(ctx: Context) -> dict:
    from factlocate.tracing.facts import summarize

    ids = [f["known_id"] for f in known_facts(ctx.settings)]
    return summarize(ctx.folder("facts"), ids, n=ctx.settings.facts, write=False)


# ---------------------------------------------------------------- Figures 2 and 3: fact-set tracing


def facts_compute(ctx: Context) -> None:
    from factlocate.tracing.facts import run_facts

    run_facts(ctx.model, ctx.folder("facts"), facts_spec(ctx.settings), n=ctx.settings.facts,
              facts=known_facts(ctx.settings), progress=ctx.progress)


def facts_render(ctx: Context) -> list:
    summary = fact_set_summary(ctx)
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


def tracing_paper() -> str:
    return numbers.TRACING["model"] + ":\n\n" + "\n".join(
        f"- {k}: {v}" for k, v in numbers.TRACING.items() if k != "model")


def severed_render(ctx: Context) -> list:
    summary = fact_set_summary(ctx)
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


def fig1_fact(ctx: Context) -> tuple[str, str]:
    s = ctx.settings
    if s.fig1_prompt is not None:
        return s.fig1_prompt, s.fig1_subject
    for fact in known_facts(s):
        path = ctx.folder("facts") / "cases" / f"known_{fact['known_id']}.json"
        if path.exists() and read_json(path).get("correct_prediction"):
            return fact["prompt"], fact["subject"]
    raise FactlocateError("Figure 1 takes the first fact Figure 2 traced, and none was traced")


def fig1_compute(ctx: Context) -> None:
    from factlocate.tracing import GridSpec, trace_kinds
    from factlocate.tracing.core import KINDS

    prompt, subject = fig1_fact(ctx)
    grids = [GridSpec(k, ctx.settings.window) for k in KINDS]
    results = trace_kinds(ctx.model, prompt, subject, grids, run_spec(ctx.settings), progress=ctx.progress)
    for key, r in results.items():
        r.save(ctx.folder("fig1") / f"trace_{key}.json")


def fig1_render(ctx: Context) -> list:
    from factlocate.tracing.core import KINDS
    from factlocate.tracing.result import TraceResult

    results = {k: TraceResult.load(ctx.folder("fig1") / f"trace_{k}.json") for k in KINDS}
    r = results["hidden"]
    return [f"Prompt {r.prompt!r}, subject {r.subject!r}: the model answers {r.answer.strip()!r} with p "
            f"{r.high_score:.3f}, {r.low_score:.3f} with the subject corrupted.", plots.trace_heatmaps(results)]


def fig1_command(s: ReportSettings, out: Path) -> str:
    prompt = s.fig1_prompt or "<the first fact Figure 2 traced>"
    subject = s.fig1_subject or "<its subject>"
    return (f"factlocate trace --model {s.model} --prompt {q(prompt)} --subject {q(subject)} --kind all "
            f"{trace_args(s)} --out {out}/fig1")


def facts_command(s: ReportSettings, out: Path) -> str:
    facts = f"--facts {s.facts_file} " if s.facts_file else ""
    return (f"factlocate trace-facts --model {s.model} --n {s.facts} --sever mlp,attn {facts}{trace_args(s)} "
            f"--out {out}/facts")


def severed_command(s: ReportSettings, out: Path) -> str:
    return "(Figure 2's run) " + facts_command(s, out)
