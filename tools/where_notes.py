"""Write notes/where-to-edit.md's results block from docs/where/<model>/analysis.json (the dev study) and
docs/where/<model>-test/validation.json (its rules scored on held-out test facts), where they exist.

    python -m tools.where_notes

tests/test_where.py recomputes the block from the same files and fails when the notes disagree.
"""
from __future__ import annotations

from pathlib import Path

from factlocate.evaluation import where
from factlocate.io import read_json, replace_block

STUDIES = {"SmolLM2-135M": Path("docs/where/smollm2-135m"), "Gemma-3-270M": Path("docs/where/gemma-3-270m")}


def _found(suffix: str, name: str) -> dict:
    """{model: the JSON file `name` in docs/where/<model><suffix>/}, for the models that have it."""
    paths = {model: folder.parent / f"{folder.name}{suffix}" / name for model, folder in STUDIES.items()}
    return {model: read_json(path) for model, path in paths.items() if path.exists()}


def block() -> str:
    return where.notes_block(_found("", "analysis.json"), _found("-test", "validation.json"))


def main() -> None:
    replace_block("notes/where-to-edit.md", where.NOTES_BEGIN, where.NOTES_END, block())
    print("wrote notes/where-to-edit.md's results block")


if __name__ == "__main__":
    main()
