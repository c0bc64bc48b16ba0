"""Aggregate per-case scores into Table-1/Table-2 rows: means x100 with 95% CIs, and S.

Each metric is averaged over a case's prompts (by `counterfact.case_scores` or
`zsre.case_scores`), then over cases. The CI half-width is 1.96 * std / sqrt(n),
with the population std (numpy's default, as ROME's summarize.py reports it).
S is the harmonic mean of the three success means (no CI, as in the paper).
"""
from __future__ import annotations

import math

import numpy as np

COLUMNS = {
    "counterfact": ("S", "ES", "EM", "PS", "PM", "NS", "NM", "GE", "RS"),
    "zsre": ("S", "Efficacy", "Paraphrase", "Specificity"),
}
SCORE_OF = {"counterfact": ("ES", "PS", "NS"), "zsre": ("Efficacy", "Paraphrase", "Specificity")}


def mean_ci(values: list[float], scale: float = 100.0) -> tuple[float, float] | None:
    """(mean, 95% CI half-width), both x`scale`; None if there are no values (n/a)."""
    xs = np.asarray([v for v in values if v is not None and not math.isnan(v)], dtype=float)
    if xs.size == 0:
        return None
    return float(xs.mean() * scale), float(1.96 * xs.std() / math.sqrt(xs.size) * scale)


def hmean(values: list[float]) -> float:
    """Harmonic mean (0 if any value is 0), as scipy.stats.hmean."""
    if any(v <= 0 for v in values):
        return 0.0
    return len(values) / sum(1 / v for v in values)


def summarize(case_scores: list[dict], kind: str = "counterfact") -> dict:
    """{column: (mean, ci) or None} over cases, plus "n"; S has a CI of None."""
    out: dict = {"n": len(case_scores)}
    for col in COLUMNS[kind]:
        if col != "S":
            out[col] = mean_ci([c.get(col) for c in case_scores])
    parts = [out[c] for c in SCORE_OF[kind]]
    out["S"] = None if any(p is None for p in parts) else (hmean([p[0] for p in parts]), None)
    return out


def cell(value, digits: int = 1) -> str:
    """'89.2 (0.5)', '89.2' without a CI, or 'n/a'."""
    if value is None:
        return "n/a"
    mean, ci = value
    return f"{mean:.{digits}f}" if ci is None else f"{mean:.{digits}f} ({ci:.{digits}f})"


def to_markdown(rows: list[tuple[str, str, dict]], kind: str = "counterfact") -> str:
    """rows: (model, editor, summary). One markdown table with Table 2's columns."""
    cols = COLUMNS[kind]
    lines = [
        "| model | editor | n | " + " | ".join(cols) + " |",
        "|---|---|---:|" + "---:|" * len(cols),
    ]
    for model, editor, s in rows:
        lines.append(f"| {model} | {editor} | {s['n']} | " + " | ".join(cell(s[c]) for c in cols) + " |")
    return "\n".join(lines)


def to_csv_rows(rows: list[tuple[str, str, dict]], kind: str = "counterfact") -> list[dict]:
    """Flat rows for summary.csv: each metric with its mean and ci_95 columns (empty when n/a)."""
    out = []
    for model, editor, s in rows:
        row = {"model": model, "editor": editor, "n": s["n"]}
        for c in COLUMNS[kind]:
            mean, ci = s[c] if s[c] is not None else (None, None)
            row[c] = "" if mean is None else round(mean, 4)
            row[f"{c}_ci95"] = "" if ci is None else round(ci, 4)
        out.append(row)
    return out
