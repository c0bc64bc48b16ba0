"""Hase et al.'s regression: how much of an edit's success the tracing effect explains beyond the layer.

Rows are (fact, layer) pairs. Three least-squares fits of an outcome y:

    layer:  y ~ layer fixed effects            (one mean per layer)
    trace:  y ~ 1 + tracing effect
    both:   y ~ layer fixed effects + tracing effect

The trace's added R² is R²(both) - R²(layer). Its CI resamples facts, not rows, since a fact's layers are not
independent of one another (`bootstrap`).

    fit = r2_table(y, effect, layer)     # {"layer": .., "trace": .., "both": .., "added": ..}
    ci = bootstrap(facts, lambda rows: r2_table(*columns(rows))["added"])
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
from jaxtyping import Float, Int

from factlocate.errors import FactlocateError


def r2(y: Float[np.ndarray, "n"], X: Float[np.ndarray, "n k"]) -> float:
    """R² of the least-squares fit of y on the columns of X (X carries its own intercept or dummies)."""
    coef, *_ = np.linalg.lstsq(X, y, rcond=None)
    resid = y - X @ coef
    total = float(((y - y.mean()) ** 2).sum())
    return 0.0 if total == 0 else 1.0 - float((resid ** 2).sum()) / total


def layer_dummies(layer: Int[np.ndarray, "n"]) -> Float[np.ndarray, "n k"]:
    """One indicator column per distinct layer (together they span the intercept)."""
    levels = np.unique(layer)
    return (layer[:, None] == levels[None, :]).astype(float)


def r2_table(y, effect, layer) -> dict[str, float]:
    """R² of the three fits, and the trace's added R² over the layer fixed effects."""
    y, effect, layer = np.asarray(y, float), np.asarray(effect, float), np.asarray(layer, int)
    if not len(y) == len(effect) == len(layer) or len(y) < 3:
        raise FactlocateError("the regression needs at least three (fact, layer) rows of equal length")
    ones = np.ones((len(y), 1))
    fits = {"layer": r2(y, layer_dummies(layer)),
            "trace": r2(y, np.hstack([ones, effect[:, None]])),
            "both": r2(y, np.hstack([layer_dummies(layer), effect[:, None]]))}
    return {**fits, "added": fits["both"] - fits["layer"]}


def bootstrap(groups: list, statistic: Callable[[list], float], n: int = 1000, seed: int = 0,
              level: float = 0.95) -> tuple[float, float]:
    """Percentile CI of `statistic(resampled groups)`, resampling whole groups (facts) with replacement."""
    if len(groups) < 2:
        raise FactlocateError("a bootstrap needs at least two facts")
    rng = np.random.default_rng(seed)
    values = [statistic([groups[i] for i in rng.integers(0, len(groups), len(groups))]) for _ in range(n)]
    lo, hi = np.quantile(values, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(lo), float(hi)


def best_layers(values: Float[np.ndarray, "facts layers"], layers: list[int]) -> list[int]:
    """Per fact, the layer of the largest value (the first such layer on a tie)."""
    return [layers[int(i)] for i in np.argmax(np.asarray(values), axis=1)]


def hmean(values: list[float]) -> float:
    """The harmonic mean, 0 when any value is 0 (CounterFact's S)."""
    values = [float(v) for v in values]
    return 0.0 if min(values) <= 0 else len(values) / sum(1 / v for v in values)
