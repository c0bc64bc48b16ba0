"""The findings table: its verdict rule, and the README's numbers checked against the pages' files."""
import re
from pathlib import Path

import pytest

from factlocate.io import marked_block
from factlocate.paper import findings

ROOT = Path(__file__).resolve().parent.parent


def test_verdict_rule():
    assert findings.direction((0.5, 3.0)) == "holds"
    assert findings.direction((-3.0, -0.5)) == "does not hold"
    assert findings.direction((-1.0, 2.0)) == "inconclusive"
    assert findings.direction((-3.0, -0.5), sign=-1) == "holds"  # a drop the paper predicts
    assert findings.within((0.3, 2.8), 5) == "holds"
    assert findings.within((2.6, 6.4), 5) == "inconclusive"
    assert findings.within((5.5, 9.0), 5) == "does not hold"


def test_paired_bootstrap_on_hand_made_cases():
    a = {i: {"NS": 1.0} for i in range(20)}
    b = {i: {"NS": 0.5 if i % 2 else 1.0} for i in range(20)}
    value, (lo, hi) = findings._paired(a, b, findings._mean("NS"))
    assert value == pytest.approx(25.0) and lo <= 25.0 <= hi and lo > 0
    assert findings._paired(a, {}, findings._mean("NS")) is None  # too few shared cases: left out


def test_readme_findings_table_is_the_pages_data():
    """The README's and notes/report.md's table is exactly what the pages' files give (python -m
    tools.readme_findings remakes both)."""
    import sys

    sys.path.insert(0, str(ROOT))
    from tools import readme_findings

    import os

    here = os.getcwd()
    os.chdir(ROOT)
    try:
        expected = readme_findings.block()
        for doc in readme_findings.DOCS:  # README.md and notes/report.md
            text = (ROOT / doc).read_text(encoding="utf-8")
            start, end = marked_block(text, findings.BEGIN, findings.END)
            assert text[start:end] == expected, doc
    finally:
        os.chdir(here)


def test_readme_front_paragraph_types_no_numbers():
    """Outside the generated table, the front paragraph states no number: each one comes from the data."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    front = readme[readme.index("**The paper, remade:**"):readme.index("## Quick start")]
    front = front[:front.index(findings.BEGIN)] + front[front.index(findings.END):]
    front = re.sub(r"\[[^\]]*\]\([^)]*\)", "", front)  # links name files (gemma-3-270m)
    front = re.sub(r"GPT-2 XL|GPT-2|95% CI", "", front)  # names, and the CI level every CI states
    assert not re.findall(r"\d", front), front
