"""The report's sections, in page order, and the order they are computed in.

Each `Section` (`paper.context`) wraps one resumable runner: tracing sections live in
`paper.tracing`, editing sections in `paper.editing`.
"""
from __future__ import annotations

import dataclasses

from factlocate.paper import editing, numbers, portability, tracing, training, tuning
from factlocate.paper.context import Context, Section
from factlocate.paper.settings import ReportSettings

__all__ = ["COMPUTE_ORDER", "Context", "SECTIONS", "Section", "asdict", "params_json"]


def _cf(s):
    return ("counterfact", s.counterfact, s.counterfact_editors, s.generation)


def _zs(s):
    return ("zsre", s.zsre, s.zsre_editors, False)


SECTIONS = (
    Section("fig1", "fig1", "Figure 1: one fact's causal traces",
            lambda s: {**tracing.tracing_params(s), "prompt": s.fig1_prompt, "subject": s.fig1_subject},
            tracing.fig1_command, tracing.fig1_render, tracing.fig1_compute),
    Section("fig2", "facts", "Figure 2: average indirect effects over known facts", tracing.tracing_params,
            tracing.facts_command,
            tracing.facts_render, tracing.facts_compute, tracing.tracing_paper),
    Section("fig3", "facts", "Figure 3: severed paths at the last subject token", tracing.tracing_params,
            tracing.severed_command,
            tracing.severed_render, None, lambda: numbers.SEVERED),
    Section("fig5", "sweep", "Figure 5: ROME's edit layer and key token",
            lambda s: dict(model=s.model, editor=s.sweep_editor, cases=s.sweep_cases, layers=s.sweep_layers,
                           dataset=s.counterfact, overrides=s.overrides.get(s.sweep_editor, {}), split="dev",
                           known=True, other_every=editing.OTHER_EVERY,
                           **({} if s.sweep_other_cases is None else {"other_cases": s.sweep_other_cases})),
            editing.sweep_command, editing.sweep_render, editing.sweep_compute, lambda: numbers.SWEEP),
    Section("tuning", tuning.FOLDER, "The baselines' hyperparameters, searched on dev", tuning.params,
            tuning.command, tuning.render, tuning.compute),
    Section("training", training.FOLDER, "MEND and KE training", training.params, training.command,
            training.render, training.compute),
    Section("table1", "zsre", "Table 1: zsRE",
            lambda s: dict(model=s.model, n=s.eval_cases, dataset=s.zsre, editors=s.zsre_editors,
                           overrides=s.overrides, tune=s.tune, **editing.column_params(s, "zsre")),
            lambda s, out: editing.eval_command(s, out, *_zs(s)),
            lambda ctx: editing.eval_render(ctx, "zsre", ctx.settings.zsre_editors),
            lambda ctx: editing.eval_compute(ctx, *_zs(ctx.settings)), editing.table1_paper,
            lambda ctx: editing.eval_partial(ctx, "zsre", ctx.settings.zsre_editors), ("editors", "zsre_editors")),
    Section("table2", "counterfact", "Table 2: CounterFact",
            lambda s: dict(model=s.model, n=s.eval_cases, dataset=s.counterfact, editors=s.counterfact_editors,
                           generation=s.generation, overrides=s.overrides, tune=s.tune,
                           **editing.column_params(s, "counterfact")),
            lambda s, out: editing.eval_command(s, out, *_cf(s)),
            lambda ctx: editing.eval_render(ctx, "counterfact", ctx.settings.counterfact_editors),
            lambda ctx: editing.eval_compute(ctx, *_cf(ctx.settings)), editing.table2_paper,
            lambda ctx: editing.eval_partial(ctx, "counterfact", ctx.settings.counterfact_editors),
            ("editors", "counterfact_editors")),
    Section("portability", portability.FOLDER, "Portability: the one-hop questions after each edit",
            portability.params, portability.command, portability.render, portability.compute),
    Section("fig6", "curie", "Figure 6: generations after rewriting Pierre Curie's field",
            lambda s: dict(model=s.model, editors=s.curie_editors, seed=s.seed, overrides=s.overrides, tune=s.tune),
            editing.curie_command, editing.curie_render, editing.curie_compute, lambda: numbers.CURIE,
            editing.curie_partial, ("editors", "curie_editors")),
    Section("sequential", "sequential", "Sequential editing: damage as edits accumulate",
            lambda s: dict(model=s.model, runs=s.sequential, dataset=s.sequential_dataset, overrides=s.overrides,
                           **({"portability": s.portability["counterfact"]} if s.portability.get("counterfact")
                              else {}),
                           **({"leave_out": s.sequential_leave_out} if s.sequential_leave_out else {})),
            editing.sequential_command, editing.sequential_render, editing.sequential_compute,
            lambda: numbers.SEQUENTIAL, editing.sequential_partial, ("runs", "sequential")),
)
# Figure 1 takes its fact from Figure 2's run, so the fact set is traced first.
COMPUTE_ORDER = ("fig2", "fig1", "fig5", "tuning", "training", "table1", "table2", "portability", "fig6",
                 "sequential")


def params_json(section: Section, s: ReportSettings) -> dict:
    import json

    return json.loads(json.dumps(section.params(s), default=str))


def asdict(s: ReportSettings) -> dict:
    return dataclasses.asdict(s)
