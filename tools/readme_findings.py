"""Write each page's findings (DIR/findings.json, findings.md) and the README's findings table from them.

    python -m tools.readme_findings            # docs/report/<model>/findings.*, and the table in README.md
                                               # and notes/report.md

The table sits between `findings.BEGIN` and `findings.END` in both; tests/test_findings.py recomputes it from
the pages' files and fails when either disagrees.
"""
from __future__ import annotations

from pathlib import Path

from factlocate.io import replace_block
from factlocate.paper import findings

DOCS = ("README.md", "notes/report.md")  # each holds the table between findings.BEGIN and findings.END
PAGES = {"SmolLM2-135M": Path("docs/report/smollm2-135m"), "Gemma-3-270M": Path("docs/report/gemma-3-270m")}


def block() -> str:
    return findings.readme_block({name: findings.findings(folder) for name, folder in PAGES.items()})


def main() -> None:
    for folder in PAGES.values():
        findings.write(folder)
    for doc in DOCS:
        replace_block(doc, findings.BEGIN, findings.END, block())
    print("wrote the findings table of README.md and notes/report.md, and docs/report/*/findings.{json,md}")


if __name__ == "__main__":
    main()
