"""`make bench ONLY=...` remeasures some sections and keeps the others."""
from tools.bench.__main__ import _merge, _sections

REPORT = """# factlocate benchmarks

## Tracing

_Measured then._

| a | 1 |

## ROME

| b | 2 |
"""


def test_sections_split_on_level_two_headings():
    assert _sections(REPORT) == ["## Tracing\n\n_Measured then._\n\n| a | 1 |", "## ROME\n\n| b | 2 |"]


def test_merge_replaces_remeasured_sections_in_place_and_appends_new_ones():
    merged = _merge(_sections(REPORT), ["## ROME\n\n| b | 3 |", "## Evaluation\n\n| c | 4 |"])
    assert merged == ["## Tracing\n\n_Measured then._\n\n| a | 1 |", "## ROME\n\n| b | 3 |",
                      "## Evaluation\n\n| c | 4 |"]
