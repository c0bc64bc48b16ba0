"""Choose editing layers from causal traces: MEMIT's range R and AttnEdit's layer.

MEMIT (appendix A) edits the layers where the gap between the ordinary and the
MLP-severed indirect effect of the hidden state at the last subject token is
largest: there the MLPs carry the effect. For each fact,

    gap[l] = p(answer | h_l restored) - p(answer | h_l restored, MLPs held corrupted)

averaged over facts; R is the window of `width` consecutive layers with the
largest summed gap.

AttnEdit's layer is the centre of high attention effect at the last token: the
effect-weighted mean layer of the attention traces (window 10) over the layers
whose mean effect is at least half of the largest.

    factlocate layer-range --model smollm2-135m --n 20 --width 6 --attention
    factlocate layer-range --from docs/report/smollm2-135m/facts --width 6 --attention

`--from` reads both curves from a finished fact-set run instead of tracing (the
report's Figure 2 folder: `trace-facts --sever mlp`, hidden and attention kinds,
at the same settings), so it costs nothing and covers only facts the model knows.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from factlocate.errors import FactlocateError
from factlocate.io import read_json


def centred(layer: int, width: int, n_layers: int) -> list[int]:
    """`width` consecutive layers centred on `layer` (the lower middle for an even width), inside the model."""
    if not 1 <= width <= n_layers:
        raise FactlocateError(f"a range of {width} layers does not fit a model of {n_layers}")
    start = min(max(0, layer - width // 2), n_layers - width)
    return list(range(start, start + width))


def facts(n: int, start: int = 0) -> list[tuple[str, str]]:
    """(prompt, subject) pairs of the shipped known facts."""
    from factlocate.datasets.known_facts import load_facts

    rows = load_facts()[start : start + n]
    return [(r["prompt"], r["subject"]) for r in rows]


def severed_gap(model, pairs, samples: int = 10, noise: str = "s3", seed: int = 1, progress: bool = True):
    """Mean over facts of (ordinary - MLP-severed) hidden-state effect at the last subject token, per layer."""
    from factlocate.tracing import resolve_noise, trace

    if not pairs:
        raise FactlocateError("no facts to trace")
    noise_obj = resolve_noise(model, noise)
    gaps = []
    for prompt, subject in tqdm(pairs, desc="severed traces", disable=not progress):
        common = dict(samples=samples, noise=noise_obj, seed=seed, token_range="subject_last")
        plain = trace(model, prompt, subject, "hidden", **common)
        severed = trace(model, prompt, subject, "hidden", sever="mlp", **common)
        gaps.append(np.asarray(plain.scores[0]) - np.asarray(severed.scores[0]))
    return np.mean(gaps, axis=0)


def best_window(values, width: int) -> list[int]:
    """The `width` consecutive layers with the largest summed value."""
    values = np.asarray(values, dtype=float)
    if not 1 <= width <= len(values):
        raise FactlocateError(f"width must be between 1 and {len(values)}, got {width}")
    sums = np.convolve(values, np.ones(width), mode="valid")
    start = int(np.argmax(sums))
    return list(range(start, start + width))


def attention_effect(model, pairs, samples: int = 10, noise: str = "s3", seed: int = 1, progress: bool = True,
                     window: int = 10):
    """Mean over facts of the attention (window 10) indirect effect at the last token, per layer."""
    from factlocate import tokens
    from factlocate.tracing import resolve_noise, trace

    noise_obj = resolve_noise(model, noise)
    effects = []
    for prompt, subject in tqdm(pairs, desc="attention traces", disable=not progress):
        last = len(tokens.encode(model, prompt)) - 1
        r = trace(model, prompt, subject, "attn", samples=samples, noise=noise_obj, seed=seed, token_range=[last],
                  window=window)
        effects.append(np.asarray(r.scores[0]) - r.low_score)
    return np.mean(effects, axis=0)


def centre_layer(effect) -> int:
    """Effect-weighted mean layer over the layers with at least half the largest effect."""
    effect = np.asarray(effect, dtype=float)
    keep = effect >= 0.5 * effect.max()
    layers = np.arange(len(effect))[keep]
    return int(round(float(np.average(layers, weights=effect[keep]))))


def from_fact_set(folder: str | Path) -> tuple[np.ndarray, np.ndarray | None, int]:
    """(severed gap, attention effect at the last token or None, facts) from a fact-set run's summary.json.

    The same means as `severed_gap` and `attention_effect` over the run's correctly answered facts: the
    per-fact low scores cancel in the gap, and the attention bucket is the last token's effect over them.
    """
    path = Path(folder) / "summary.json"
    if not path.is_file():
        raise FactlocateError(f"{path} does not exist: give a finished trace-facts folder")
    summary = read_json(path)
    severed = summary.get("severed") or {}
    if "mlp" not in severed.get("by_kind", {}):
        raise FactlocateError(f"{folder} has no MLP-severed hidden traces: run trace-facts with --sever mlp")
    gap = np.asarray(severed["aie_unsevered"], dtype=float) - np.asarray(severed["by_kind"]["mlp"]["aie"], dtype=float)
    attn = summary.get("kinds", {}).get("attn")
    effect = np.asarray(attn["buckets"]["last"]["aie"], dtype=float) if attn else None
    return gap, effect, int(severed["n"])
