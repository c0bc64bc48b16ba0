"""Evaluation datasets: CounterFact and zsRE, from a local path, the cache or the shipped sample.

A name never changes meaning with the network: `counterfact` is the canonical file or an error, never the
sample; `counterfact-sample` is the shipped sample on every machine.

    ds = datasets.load("counterfact")            # the canonical file (cached or downloaded), or an error
    ds = datasets.load("counterfact-sample")     # the 400 shipped records, always (zsre-sample likewise)
    records = ds.split("test")                   # a shipped split (`splits`): dev to choose on, test to report on
    ds = datasets.load("counterfact:/path.json") # ROME or EasyEdit format
    ds = datasets.load("zsre:/path/zsre_mend_eval.json")
    ds = datasets.load("counterfact:A.json+B.json")     # several files, in order; repeated case ids dropped
    records = ds.select(start=0, n=100)
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from factlocate.datasets import counterfact, download, zsre
from factlocate.datasets.records import CounterFactRecord, ZsreRecord
from factlocate.errors import FactlocateError

KINDS = {
    # kind: (parser, canonical file, shipped sample)
    "counterfact": (counterfact.parse, "counterfact.json", "counterfact_sample.json"),
    "zsre": (zsre.parse, "zsre_mend_eval.json", "zsre_sample.json"),
}

__all__ = ["CounterFactRecord", "Dataset", "ZsreRecord", "load", "read_case_ids"]


@dataclass(frozen=True)
class DatasetRef:
    """What caches and reports need of a dataset: its kind, name and file digest (no records)."""

    kind: str
    name: str
    digest: str


@dataclass
class Dataset:
    kind: str  # counterfact | zsre
    name: str  # what the source is called in reports and cache keys
    source: str  # the file read
    digest: str  # first 16 hex digits of the file's SHA-256
    records: list = field(repr=False)
    note: str = ""  # how the source was chosen, for the user

    def ref(self) -> DatasetRef:
        return DatasetRef(self.kind, self.name, self.digest)

    def split(self, name: str) -> list:
        """The records of a shipped split (`dev` or `test`), in the split's order; see `datasets.splits`."""
        from factlocate.datasets import splits

        return self.select(case_ids=splits.case_ids(self, name))

    def select(self, start: int = 0, n: int | None = None, case_ids: list[int] | None = None) -> list:
        """Records start..start+n in file order, or those with the given case ids (in that order)."""
        if start < 0 or (n is not None and n < 1):
            raise FactlocateError("--start must be >= 0 and --n >= 1")
        if case_ids is not None:
            by_id = {r.case_id: r for r in self.records}
            missing = [c for c in case_ids if c not in by_id]
            if missing:
                raise FactlocateError(f"case ids {missing[:5]} are not in {self.name} ({self.source})")
            return [by_id[c] for c in case_ids]
        if start >= len(self.records):
            raise FactlocateError(f"--start {start} is past the end of {self.name} ({len(self.records)} records)")
        return self.records[start : None if n is None else start + n]


def _read(path: Path) -> tuple[list, str]:
    data = path.read_bytes()
    try:
        raws = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise FactlocateError(f"{path} is not valid JSON: {e}") from e
    return raws, hashlib.sha256(data).hexdigest()[:16]


def _shipped(name: str) -> Path:
    return Path(str(resources.files("factlocate.data").joinpath(name)))


def load(spec: str = "counterfact-sample", allow_download: bool = True) -> Dataset:
    """Load `kind`, `kind-sample` (the shipped sample) or `kind:PATH` (kind is counterfact or zsre)."""
    if spec.endswith("-sample") and spec[: -len("-sample")] in KINDS:
        kind = spec[: -len("-sample")]
        parse, _, sample = KINDS[kind]
        raws, digest = _read(_shipped(sample))
        return Dataset(kind, spec, str(_shipped(sample)), digest, parse(raws, source=sample))
    kind, _, path = spec.partition(":")
    if kind not in KINDS:
        raise FactlocateError(f"unknown dataset {spec!r}: use counterfact, zsre, counterfact-sample, zsre-sample, "
                              "counterfact:PATH or zsre:PATH")
    parse, canonical, _ = KINDS[kind]
    parts = path.split("+") if path else []
    if len(parts) > 1 and all(Path(p).expanduser().is_file() for p in parts):
        return _concatenated(kind, [Path(p).expanduser() for p in parts])
    if path:
        file = Path(path).expanduser()
        if not file.is_file():
            raise FactlocateError(f"dataset file {file} does not exist")
        name = file.stem if file.stem.startswith(kind) else f"{kind}-{file.stem}"
    else:
        file = download.cached(canonical)
        if file is None:
            if not allow_download:
                raise FactlocateError(f"{kind} means the canonical {canonical}, which is not cached here; use "
                                      f"--dataset {kind}-sample for the shipped sample or {kind}:PATH for a file")
            try:
                file = download.fetch(canonical)
            except FactlocateError as e:
                raise FactlocateError(f"{e}; or use --dataset {kind}-sample for the shipped sample") from e
        name = kind
    raws, digest = _read(file)
    return Dataset(kind, name, str(file), digest, parse(raws, source=file.name))


def _concatenated(kind: str, files: list[Path]) -> Dataset:
    """Several files of one kind, in order; a case id seen in an earlier file is dropped."""
    parse = KINDS[kind][0]
    records, seen, digests, dropped = [], set(), [], 0
    for file in files:
        raws, digest = _read(file)
        digests.append(digest)
        for r in parse(raws, source=file.name):
            if r.case_id in seen:
                dropped += 1
                continue
            seen.add(r.case_id)
            records.append(r)
    name = "+".join(f.stem for f in files)
    digest = hashlib.sha256("".join(digests).encode()).hexdigest()[:16]
    note = f"{len(records)} records from {len(files)} files ({dropped} repeated case ids dropped)"
    return Dataset(kind, name, "+".join(str(f) for f in files), digest, records, note)


def read_case_ids(path: str | Path) -> list[int]:
    """Case ids from a JSON list or a text file with one id per line."""
    path = Path(path)
    if not path.is_file():
        raise FactlocateError(f"cases file {path} does not exist")
    text = path.read_text().strip()
    try:
        ids = json.loads(text) if text.startswith("[") else [int(x) for x in text.split()]
    except ValueError as e:
        raise FactlocateError(f"{path}: expected a JSON list of case ids or one id per line") from e
    if not ids or not all(isinstance(i, int) for i in ids):
        raise FactlocateError(f"{path}: expected a non-empty list of integer case ids")
    return ids
