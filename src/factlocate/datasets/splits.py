"""Named, disjoint splits of a dataset, shipped as case-id lists with digests (`factlocate/data/splits/`).

    records = dataset.split("dev")        # `dev` to choose on, `test` to report on
    ids = splits.case_ids(dataset, "test")

A split file names the dataset it was cut from and that file's digest; a dataset whose digest differs is
refused, so a split never silently means other records. The shipped ones (`python -m tools.make_splits`):

    counterfact-sample, zsre-sample   test: the first 100 records, the cases Tables 1 and 2 report;
                                      dev: every later record that shares no text with any test record
                                      (`leakage.texts`: prompts, paraphrases, neighbourhood, attribute,
                                      generation and locality prompts)
"""
from __future__ import annotations

import hashlib
import json
from importlib import resources
from pathlib import Path

from factlocate.datasets import leakage
from factlocate.errors import FactlocateError

SPLITS = ("dev", "test")


def ids_digest(ids: list[int]) -> str:
    return hashlib.sha256(json.dumps(list(ids)).encode()).hexdigest()[:16]


def path_for(dataset_name: str) -> Path:
    return Path(str(resources.files("factlocate.data").joinpath("splits", f"{dataset_name}.json")))


def _by_digest(dataset) -> Path | None:
    """The shipped split file cut from a file with this dataset's digest (the sample loaded by path, say)."""
    for path in sorted(path_for("x").parent.glob("*.json")):
        if json.loads(path.read_text(encoding="utf-8")).get("digest") == dataset.digest:
            return path
    return None


def load(dataset) -> dict:
    """The split file of `dataset` (by its name, else by its file's digest), checked against its digest."""
    path = path_for(dataset.name)
    if not path.is_file():
        path = _by_digest(dataset) or path
    if not path.is_file():
        raise FactlocateError(f"no dev/test splits are shipped for dataset {dataset.name!r} (shipped: "
                              f"{', '.join(p.stem for p in sorted(path.parent.glob('*.json'))) or 'none'})")
    spec = json.loads(path.read_text(encoding="utf-8"))
    if spec["digest"] != dataset.digest:
        raise FactlocateError(f"the splits of {dataset.name} were cut from a file with digest {spec['digest']}, "
                              f"not this one ({dataset.digest}): they would name other records")
    return spec


def case_ids(dataset, split: str) -> list[int]:
    if split not in SPLITS:
        raise FactlocateError(f"unknown split {split!r}: use {', '.join(SPLITS)}")
    spec = load(dataset)
    ids = spec["splits"][split]
    if ids_digest(ids) != spec["digests"][split]:
        raise FactlocateError(f"{path_for(dataset.name)}: the {split} ids do not match their digest")
    return ids


def make(dataset, test_n: int = 100, exclude: set[str] | None = None, eligible=None, rule: str | None = None) -> dict:
    """The shipped rule: test = the first `test_n` records; dev = every later record sharing no text with test.

    With `exclude` (texts of training or tuning data) and `eligible` (a record predicate), test takes the first
    `test_n` eligible records sharing no text with `exclude`, and dev every other record sharing no text with test:
    the rule for a file whose records are also used elsewhere (the CounterFact portability file). `rule` then
    says in words what was excluded."""
    exclude = exclude or set()
    test = [r for r in dataset.records if (eligible is None or eligible(r)) and not leakage.texts(r) & exclude]
    test = test[:test_n]
    if len(test) < test_n:
        raise FactlocateError(f"{dataset.name}: only {len(test)} records qualify for a test split of {test_n}")
    test_ids, test_texts = {r.case_id for r in test}, leakage.all_texts(test)
    dev = [r for r in dataset.records if r.case_id not in test_ids and not leakage.texts(r) & test_texts]
    ids = {"dev": [r.case_id for r in dev], "test": [r.case_id for r in test]}
    return {"dataset": dataset.name, "digest": dataset.digest, "kind": dataset.kind,
            "rule": rule or f"test: the first {test_n} records in file order; dev: every later record that shares "
                            "no text with any test record",
            "splits": ids, "digests": {k: ids_digest(v) for k, v in ids.items()},
            "sizes": {k: len(v) for k, v in ids.items()}}
