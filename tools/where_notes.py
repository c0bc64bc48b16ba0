"""Write notes/where-to-edit.md's results block from docs/where/<model>/analysis.json.

    python -m tools.where_notes

tests/test_where.py recomputes the block from the same files and fails when the notes disagree.
"""
from __future__ import annotations

from pathlib import Path

from factlocate.evaluation import where
from factlocate.io import read_json, replace_block

STUDIES = {"SmolLM2-135M": Path("docs/where/smollm2-135m"), "Gemma-3-270M": Path("docs/where/gemma-3-270m")}


def block() -> str:
    return where.notes_block({name: read_json(folder / "analysis.json") for name, folder in STUDIES.items()
                              if (folder / "analysis.json").exists()})


def main() -> None:
    replace_block("notes/where-to-edit.md", where.NOTES_BEGIN, where.NOTES_END, block())
    print("wrote notes/where-to-edit.md's results block")


if __name__ == "__main__":
    main()
