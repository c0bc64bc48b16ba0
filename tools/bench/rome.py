"""ROME speed on the embedded models: one edit split into k̄, v* and the update, the fast v*
against a plain implementation (full forward passes, full logits), and key-statistics throughput.

    python -m tools.bench --only rome
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import torch

from factlocate.editors.keyvalue import context_templates, key_stats, rome
from factlocate.editors.base import EditRequest
from factlocate.errors import FactlocateError
from factlocate.models import EMBEDDED, load_model

REQUEST = EditRequest("The mother tongue of {} is", "Danielle Darrieux", "English", target_true="French")
STATS_TOKENS = 10_000


def bench_model(spec: str, model=None, layer: int | None = None, steps: int | None = None) -> dict:
    """Time one edit on `spec` (loaded unless `model` is given), fast and plain.

    `steps` caps the v* optimisation (default: the config's v_num_grad_steps).
    """
    model = model if model is not None else load_model(spec)
    overrides = {k: v for k, v in (("layer", layer), ("v_num_grad_steps", steps)) if v is not None}
    hp = rome.load(spec, overrides)
    with tempfile.TemporaryDirectory() as tmp:
        stats = key_stats.key_stats(model, hp.layer, hp.stats_corpus, STATS_TOKENS, hp.stats_dtype,
                                    path=Path(tmp) / "stats.pt", progress=False)
    templates = context_templates.context_templates(model, hp.context_template_lengths, hp.seed)
    runs = {}
    for fast in (True, False):
        hp.fast = fast
        runs[fast] = rome.compute_edit(model, REQUEST, hp, stats=stats, templates=templates)
    v_fast = runs[True].extra["per_request"][0]["v_star"]
    v_plain = runs[False].extra["per_request"][0]["v_star"]
    f, p = runs[True].timings, runs[False].timings
    return {
        "model": spec, "layer": hp.layer, "k_bar": f["k_bar"], "v_star": f["v_star"], "update": f["update"],
        "edit": f["k_bar"] + f["v_star"] + f["update"], "v_star_plain": p["v_star"],
        "steps": len(runs[True].extra["per_request"][0]["losses"]),
        "max_dv": float((v_fast - v_plain).abs().max()), "v_norm": float(v_fast.norm()),
        "stats_tok_s": stats.tokens_per_second,
        "p_new": runs[True].probs_after[0]["new"],
    }


def run() -> str:
    """Each embedded model at its configured ROME layer and at a late one (three below the top): the fast v*
    skips the frozen blocks below the edited layer, so its gain over the plain path grows with the layer."""
    rows = []
    for spec in EMBEDDED:
        try:
            model = load_model(spec)
            late = int(model.cfg.n_layers) - 3
            rows += [bench_model(spec, model), bench_model(spec, model, layer=late)]
        except FactlocateError as e:
            rows.append({"model": spec, "error": str(e)})
    return table(rows)


def table(rows: list[dict]) -> str:
    lines = [
        "## ROME: one edit (\"The mother tongue of Danielle Darrieux is\" -> English)",
        "",
        "Seconds per edit split into k̄ (compute_u), v* (at most `steps` Adam steps) and the update; "
        "v* plain = full forward passes with full logits; max |Δv*| = largest difference between the two v*. "
        f"Key statistics: {STATS_TOKENS:,} tokens of the shipped WikiText-2 test split, float64.",
        "",
        "| model | layer | k̄ s | v* s | update s | edit s | v* plain s | v* speed-up | steps | max abs Δv* (abs norm v*) | stats tok/s |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['model']} | skipped: {r['error']} |" + " |" * 9)
            continue
        lines.append(
            f"| {r['model']} | {r['layer']} | {r['k_bar']:.2f} | {r['v_star']:.2f} | {r['update']:.3f} | {r['edit']:.2f} | "
            f"{r['v_star_plain']:.2f} | {r['v_star_plain'] / r['v_star']:.1f}x | {r['steps']} | "
            f"{r['max_dv']:.1e} ({r['v_norm']:.1f}) | {r['stats_tok_s']:,.0f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    torch.manual_seed(0)
    print(run())
