"""The known facts: ROME's 1,209 facts the paper traces (shipped), or a JSON list of the same shape.

    facts = load_facts()            # the shipped known_1000.json
    facts = load_facts("mine.json") # [{"known_id", "subject", "prompt", "attribute", ...}, ...]
"""
from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

from factlocate.errors import FactlocateError
from factlocate.io import read_json

SHIPPED = "known_1000.json"
REQUIRED = ("known_id", "subject", "prompt", "attribute")


def load_facts(path: str | Path | None = None) -> list[dict]:
    """Facts from a known-facts style JSON list (default: the shipped known_1000.json)."""
    if path is None:
        with resources.files("factlocate.data").joinpath(SHIPPED).open(encoding="utf-8") as f:
            facts = json.load(f)
        where = SHIPPED
    else:
        facts, where = read_json(path), str(path)
    if not isinstance(facts, list) or not facts:
        raise FactlocateError(f"{where} must hold a non-empty JSON list of facts")
    for i, fact in enumerate(facts):
        missing = [k for k in REQUIRED if not isinstance(fact, dict) or k not in fact]
        if missing:
            raise FactlocateError(
                f"{where}: fact {i} lacks {', '.join(missing)}; each fact needs {', '.join(REQUIRED)}"
            )
    return facts
