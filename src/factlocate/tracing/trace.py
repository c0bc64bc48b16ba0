"""`trace()` and `trace_kinds()`: causal tracing of one fact (Meng et al. 2022, Section 2).

    result = trace(model, "The Eiffel Tower is located in the city of", "The Eiffel Tower", kind="mlp")
    result.scores  # [n_tokens, n_layers]: p(answer) with (token, layer) restored

    results = trace_kinds(model, prompt, subject, [GridSpec("hidden"), GridSpec("mlp")], RunSpec(samples=10))

Data flow: prompt -> `core.prepare` (tokens, subject range, clean answer)
-> corruption (`corruption.for_prompt`: noise or STR) -> engine (`batched` by default, `naive` for
verification) -> one `TraceResult` per grid.
"""
from __future__ import annotations

import time

import numpy as np

from factlocate import tokens
from factlocate.errors import FactlocateError
from factlocate.identity import identity
from factlocate.tracing import atp, batched, corruption, naive, verify
from factlocate.tracing.core import KINDS, GridSpec, Prepared, RunSpec, prepare, split_options
from factlocate.tracing.noise import Noise
from factlocate.tracing.result import TraceResult


def _positions(prep: Prepared, token_range) -> list[int]:
    n = len(prep.ids)
    if token_range is None or token_range == "all":
        return list(range(n))
    if token_range == "subject_last":
        return [prep.subject_range[1] - 1]
    try:
        positions = [int(t) for t in token_range]
    except (TypeError, ValueError):
        raise FactlocateError(f"token_range {token_range!r}: use 'all', 'subject_last' or a list of positions")
    if not positions or any(not 0 <= t < n for t in positions):
        raise FactlocateError(f"token_range {token_range!r} must list positions in 0..{n - 1}")
    return positions


def _grids(grids) -> list[GridSpec]:
    if isinstance(grids, (str, GridSpec)):
        grids = [grids]
    out = [g if isinstance(g, GridSpec) else GridSpec(kind=g) for g in grids]
    if not out:
        raise FactlocateError("no grids to trace: give at least one kind")
    return out


def trace_kinds(model, prompt: str, subject: str, grids=KINDS, run: RunSpec | None = None, *,
                noise: Noise | None = None, token_range=None, progress: bool = False,
                partners: list[dict] | None = None, relation: str | None = None,
                answer: str | None = None) -> dict[str, TraceResult]:
    """Trace several grids of one prompt with one clean run and one corruption.

    `grids` lists `GridSpec`s (or kind names). The results are keyed by kind, with
    "hidden_severed_<kind>" for a severed hidden grid. The corruption is the one `run.corrupt`
    names (`factlocate.tracing.corruption`), set up for this prompt: `noise` is an already resolved
    `Noise` (fact-set runs measure sigma once; by default `run.noise` is resolved here), and the
    `str` corruption swaps the subject for facts of `partners` (default: the shipped known facts),
    of the same `relation` where possible. `run.method` chooses exact
    tracing, attribution patching (`atp`), AtP with exact verification (`atp+verify`), or AtP with a fixed
    share of cells run exactly (`atp+budget`). `answer` traces the probability of that text's first token
    instead of the clean top-1 token's.
    """
    run = run or RunSpec()
    grids = _grids(grids)
    if run.method != "exact" and run.engine != "batched":
        raise FactlocateError("attribution patching verifies with the batched engine: use --engine batched")
    corrupt = corruption.for_prompt(corruption.Setting(model, prompt, subject, run, noise, partners, relation))
    start = time.perf_counter()
    prep = prepare(model, prompt, subject, grids, run, corrupt, answer)
    positions = _positions(prep, token_range)
    exact = estimates = [None] * len(grids)
    if run.method == "atp":
        scores, low, _ = atp.estimate(model, prep, grids, positions, run.graddrop)
        exact, estimates = [np.zeros(s.shape, dtype=bool) for s in scores], scores
    elif run.method in ("atp+verify", "atp+budget"):
        scores, exact, low, estimates, _ = verify.screen_and_verify(model, prep, grids, positions, run.top,
                                                                    run.graddrop, progress,
                                                                    budget=run.method == "atp+budget")
    elif run.engine == "batched":
        scores, low = batched.run_jobs(model, prep, grids, positions, progress=progress)
    else:
        low = naive.low_score(model, prep)
        scores = [naive.scores(model, prep, g, positions, progress=progress) for g in grids]
    seconds = (time.perf_counter() - start) / len(grids)
    common = dict(
        low_score=low, high_score=prep.high_score, answer=model.tokenizer.decode([prep.answer_id]),
        answer_id=prep.answer_id, input_ids=list(prep.ids), input_tokens=tokens.str_tokens(model, prep.ids),
        subject_range=prep.subject_range, positions=positions, prompt=prompt, subject=subject,
        model=identity(model).spec, run=run, noise=corrupt.describe(), seconds=seconds,
    )
    return {result_key(g): TraceResult(scores=s, grid=g, exact=x, estimates=a, **common)
            for g, s, x, a in zip(grids, scores, exact, estimates)}


def result_key(grid: GridSpec) -> str:
    """'hidden', 'mlp', 'attn', or 'hidden_severed_mlp' for a severed grid."""
    return f"{grid.kind}_severed_{grid.sever}" if grid.sever else grid.kind


def trace(model, prompt: str, subject: str, kind: str = "hidden", **options) -> TraceResult:
    """Causal trace of one prompt: restore each (token, layer) site of kind `kind`.

    Options are the fields of `RunSpec` (samples=10, noise="s3" or a resolved `Noise`,
    replace, seed=1, engine, chunk_rows) and `GridSpec` (window=10, sever, noise_draws),
    plus `token_range` (all|subject_last|positions) and `progress`.
    """
    run, grid, rest = split_options(options)
    noise = run.pop("noise", "s3")
    if isinstance(noise, Noise):
        run["noise"] = noise.spec.text
    else:
        run["noise"], noise = str(noise), None
    unknown = set(rest) - {"token_range", "progress", "partners", "relation", "answer"}
    if unknown:
        raise FactlocateError(f"unknown trace options {sorted(unknown)}")
    results = trace_kinds(model, prompt, subject, [GridSpec(kind, **grid)], RunSpec.from_dict(run), noise=noise, **rest)
    return next(iter(results.values()))
