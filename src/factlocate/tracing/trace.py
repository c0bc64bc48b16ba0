"""`trace()`: causal tracing of one fact (Meng et al. 2022, Section 2).

    result = trace(model, "The Eiffel Tower is located in the city of", "The Eiffel Tower", kind="mlp")
    result.scores  # [n_tokens, n_layers]: p(answer) with (token, layer) restored

Data flow: prompt -> `core.prepare` (tokens, subject range, clean answer)
-> noise (`noise.resolve_noise`) -> engine (`batched` by default, `naive` for
verification) -> `TraceResult`.
"""
from __future__ import annotations

import dataclasses
import time

from factlocate import tokens
from factlocate.errors import FactlocateError
from factlocate.tracing import batched, naive
from factlocate.tracing.core import KINDS, Prepared, TraceParams, prepare
from factlocate.tracing.noise import Noise, resolve_noise
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


def trace_kinds(model, prompt: str, subject: str, kinds=KINDS, *, samples: int = 10,
                noise: str | float | Noise = "s3", window: int = 10, seed: int = 1,
                sever: str | None = None, noise_draws: str = "same", replace: bool = False,
                engine: str = "batched", token_range=None, chunk_rows: int = 256,
                progress: bool = False, model_name: str | None = None) -> dict[str, TraceResult]:
    """Trace several kinds of one prompt with one clean run and one noise draw.

    `kinds` lists hidden, mlp and attn. `sever` (mlp or attn) makes the hidden
    trace a severed one. `noise` may be a spec string or an already resolved
    `Noise` (fact-set runs measure sigma once).
    """
    if isinstance(kinds, str):
        kinds = [kinds]
    params = [TraceParams(k, samples, window, seed, sever if k == "hidden" else None, noise_draws,
                          engine, chunk_rows) for k in kinds]
    if sever and "hidden" not in kinds:
        raise FactlocateError("a severed trace restores hidden states: include kind hidden")
    if not isinstance(noise, Noise):
        noise = resolve_noise(model, noise, replace=replace)
    elif replace and not noise.replace:
        noise = dataclasses.replace(noise, replace=True)
    start = time.perf_counter()
    prep = prepare(model, prompt, subject, params, noise)
    positions = _positions(prep, token_range)
    if engine == "batched":
        grids, low = batched.run_jobs(model, prep, params, positions, progress=progress)
    else:
        low = naive.low_score(model, prep)
        grids = [naive.scores(model, prep, p, positions, progress=progress) for p in params]
    seconds = (time.perf_counter() - start) / len(params)
    name = model_name or getattr(model.cfg, "model_name", None) or "model"
    desc = noise.describe()
    return {
        p.kind: TraceResult(
            scores=grid, low_score=low, high_score=prep.high_score,
            answer=model.tokenizer.decode([prep.answer_id]), answer_id=prep.answer_id,
            input_ids=list(prep.ids), input_tokens=tokens.str_tokens(model, prep.ids),
            subject_range=prep.subject_range, kind=p.kind, window=p.window,
            noise_level=noise.level, noise=desc, samples=samples, seed=seed, model=str(name),
            prompt=prompt, subject=subject, positions=positions, sever=p.sever,
            noise_draws=noise_draws, engine=engine, seconds=seconds,
        )
        for p, grid in zip(params, grids)
    }


def trace(model, prompt: str, subject: str, kind: str = "hidden", samples: int = 10,
          noise: str | float | Noise = "s3", window: int = 10, seed: int = 1, **options) -> TraceResult:
    """Causal trace of one prompt: restore each (token, layer) site of kind `kind`.

    Options: `sever` (mlp|attn, hidden only), `noise_draws` (same|reference),
    `replace` (replace the subject embeddings by noise), `engine` (batched|naive),
    `token_range` (all|subject_last|positions), `chunk_rows`, `progress`, `model_name`.
    """
    return trace_kinds(model, prompt, subject, [kind], samples=samples, noise=noise, window=window,
                       seed=seed, **options)[kind]
