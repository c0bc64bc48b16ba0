"""The paper's findings, each tested on a page's own data: the statistic, its 95% CI and a verdict.

    rows = findings("docs/report/smollm2-135m")    # [{"id", "finding", "statistic", "value", "ci", "verdict"}]
    md = markdown(rows)

Verdicts follow one rule. A comparison in the paper's direction *holds* when its CI excludes zero on the paper's
side, *does not hold* when it excludes zero on the other, and is *inconclusive* otherwise. A claim of closeness
("costs little") names its margin: it holds when the whole CI lies inside the margin and does not hold when the
whole CI lies outside. CIs resample cases (editing) or take the fact set's normal interval (tracing). A finding
whose data the page lacks is left out, never guessed.

Written by `factlocate report --findings` to DIR/findings.json and findings.md; the README's front table is made
from those files (`tools/readme_findings.py`), and a test checks that the two agree.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from factlocate.io import read_json, write_json, write_text
from factlocate.metrics.localisation import bootstrap, hmean

MARGIN = 5.0  # points (x100) for "costs little": the paper's ROME loses 3.1 NS points on GPT-2 XL
N_BOOT = 2000


NAMES = {"ft": "FT", "ft-l": "FT+L", "kn": "KN", "mend": "MEND", "ke": "KE"}


def _cases(folder: Path, editor: str, phase: str) -> dict[int, dict]:
    """case id -> the `phase` ("pre" or "post") scores of an editor's run (empty: no such run)."""
    cases = [read_json(p) for p in sorted((folder / editor / "cases").glob("*.json"))]
    return {c["case_id"]: c[phase]["scores"] for c in cases if phase in c}


def _s(scores: list[dict]) -> float:
    return 100 * hmean([np.mean([s[m] for s in scores]) for m in ("ES", "PS", "NS")])


def _paired(a: dict[int, dict], b: dict[int, dict], stat, seed: int = 0) -> tuple[float, tuple[float, float]] | None:
    """stat(a's scores) - stat(b's scores) over their shared cases, with a case-bootstrap 95% CI."""
    ids = sorted(set(a) & set(b))
    if len(ids) < 10:
        return None

    def gap(cases):
        return stat([a[i] for i in cases]) - stat([b[i] for i in cases])
    return float(gap(ids)), bootstrap(ids, gap, N_BOOT, seed)


def _mean(metric: str):
    return lambda scores: 100 * float(np.mean([s[metric] for s in scores]))


def direction(ci: tuple[float, float], sign: int = 1) -> str:
    lo, hi = (ci[0], ci[1]) if sign > 0 else (-ci[1], -ci[0])
    return "holds" if lo > 0 else "does not hold" if hi < 0 else "inconclusive"


def within(ci: tuple[float, float], margin: float) -> str:
    """A cost (a drop, positive) that the paper calls small: inside the margin or not."""
    return "holds" if ci[1] < margin else "does not hold" if ci[0] > margin else "inconclusive"


def _tracing(folder: Path) -> list[dict]:
    path = folder / "facts" / "summary.json"
    if not path.exists():
        return []
    kinds = read_json(path)["kinds"]
    rows = []
    for key, kind, bucket, text, early in (
            ("mlp-early", "mlp", "last_subject", "the MLP's effect at the last subject token peaks in the first half "
                                                 "of the layers", True),
            ("attn-late", "attn", "last", "attention's effect at the last token peaks in the second half of the "
                                          "layers", False)):
        b = kinds[kind]["buckets"][bucket]
        aie, ci = np.asarray(b["aie"]), np.asarray(b["ci95"])
        peak, n = int(np.argmax(aie)), len(aie)
        significant = aie[peak] - ci[peak] > 0
        placed = peak < n / 2 if early else peak >= n / 2
        rows.append({"id": key, "finding": text, "statistic": "peak layer; AIE there",
                     "value": f"layer {peak} of {n}; {aie[peak]:.3f}", "ci": f"[{aie[peak] - ci[peak]:.3f}, "
                     f"{aie[peak] + ci[peak]:.3f}]",
                     "verdict": "holds" if significant and placed else "does not hold" if significant else
                     "inconclusive"})
    return rows


def _editing(folder: Path, table: str) -> list[dict]:
    base = folder / table
    if not base.is_dir():
        return []
    unedited = _cases(base, "unedited", "pre")
    post = {e.name: _cases(base, e.name, "post") for e in base.iterdir() if e.name != "unedited"}
    rows = []

    def add(key, text, stat_text, got, verdict_of):
        if got is not None:
            value, ci = got
            rows.append({"id": f"{table}-{key}", "finding": text, "statistic": stat_text, "value": f"{value:.1f}",
                         "ci": f"[{ci[0]:.1f}, {ci[1]:.1f}]", "verdict": verdict_of(ci)})

    rome = post.get("rome", {})
    if table == "counterfact":
        for other in ("ft", "ft-l", "kn", "mend", "ke"):
            add(f"rome-s-{other}", f"ROME scores a higher S than {NAMES[other]}", f"S(ROME) - S({NAMES[other]})",
                _paired(rome, post.get(other, {}), _s), direction)
        add("rome-ps-ftl", "ROME generalises to paraphrases better than FT+L", "PS(ROME) - PS(FT+L)",
            _paired(rome, post.get("ft-l", {}), _mean("PS")), direction)
        add("ft-ns", "FT damages the neighbourhood", "NS(FT) - NS(unedited)",
            _paired(post.get("ft", {}), unedited, _mean("NS")), lambda ci: direction(ci, -1))
        add("rome-ns", f"ROME costs the neighbourhood under {MARGIN:g} points", "NS(unedited) - NS(ROME)",
            _paired(unedited, rome, _mean("NS")), lambda ci: within(ci, MARGIN))
    else:
        add("rome-es-ft", "ROME's zsRE efficacy exceeds FT's", "Efficacy(ROME) - Efficacy(FT), token accuracy",
            _paired(rome, post.get("ft", {}), _mean("Efficacy")), direction)
        add("rome-ps-ft", "ROME's zsRE paraphrase accuracy exceeds FT's", "Paraphrase(ROME) - Paraphrase(FT)",
            _paired(rome, post.get("ft", {}), _mean("Paraphrase")), direction)
        add("rome-ns", f"ROME costs zsRE specificity under {MARGIN:g} points",
            "Specificity(unedited) - Specificity(ROME)", _paired(unedited, rome, _mean("Specificity")),
            lambda ci: within(ci, MARGIN))
    return rows


def findings(folder: str | Path) -> list[dict]:
    folder = Path(folder)
    return _tracing(folder) + _editing(folder, "counterfact") + _editing(folder, "zsre")


def markdown(rows: list[dict]) -> str:
    lines = ["| finding | statistic | value | 95% CI | verdict |", "|---|---|---:|---:|---|"]
    lines += [f"| {r['finding']} | {r['statistic']} | {r['value']} | {r['ci']} | {r['verdict']} |" for r in rows]
    return "\n".join(lines) + "\n"


BEGIN, END = "<!-- findings: made by `python -m tools.readme_findings`; a test checks it -->", "<!-- /findings -->"


def readme_block(pages: dict[str, list[dict]]) -> str:
    """The README's findings table: one row per finding, one column per page (value [CI], verdict)."""
    ids = list(dict.fromkeys(r["id"] for rows in pages.values() for r in rows))
    by = {name: {r["id"]: r for r in rows} for name, rows in pages.items()}
    text = {r["id"]: (r["finding"], r["statistic"]) for rows in pages.values() for r in rows}
    lines = [BEGIN, "", "| finding | statistic | " + " | ".join(pages) + " |",
             "|---|---|" + "---|" * len(pages)]
    for i in ids:
        cells = [f"{by[n][i]['value']} {by[n][i]['ci']}: **{by[n][i]['verdict']}**" if i in by[n] else "n/a"
                 for n in pages]
        lines.append(f"| {text[i][0]} | {text[i][1]} | " + " | ".join(cells) + " |")
    return "\n".join(lines + ["", END])


def write(folder: str | Path) -> list[dict]:
    folder = Path(folder)
    rows = findings(folder)
    write_json(folder / "findings.json", {"margin": MARGIN, "bootstrap": N_BOOT, "rows": rows})
    write_text(folder / "findings.md", markdown(rows))
    return rows
