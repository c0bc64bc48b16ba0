"""Write each page's findings (DIR/findings.json, findings.md) and the README's findings table from them.

    python -m tools.readme_findings            # docs/report/<model>/findings.*, and README.md's table

The README's table sits between `findings.BEGIN` and `findings.END`; tests/test_findings.py recomputes it from
the pages' files and fails when the README disagrees.
"""
from __future__ import annotations

from pathlib import Path

from factlocate.io import replace_block
from factlocate.paper import findings

PAGES = {"SmolLM2-135M": Path("docs/report/smollm2-135m"), "Gemma-3-270M": Path("docs/report/gemma-3-270m")}


def block() -> str:
    return findings.readme_block({name: findings.findings(folder) for name, folder in PAGES.items()})


def main() -> None:
    for folder in PAGES.values():
        findings.write(folder)
    replace_block("README.md", findings.BEGIN, findings.END, block())
    print("wrote README.md's findings table and docs/report/*/findings.{json,md}")


if __name__ == "__main__":
    main()
