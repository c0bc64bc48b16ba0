"""The canonical ROME data files, downloaded once and atomically into the user's cache.

Where rome.baulab.info is unreachable (offline machines), `fetch` raises a
`FactlocateError` saying so; callers fall back to local or shipped files.
"""
from __future__ import annotations

import urllib.request
from pathlib import Path
from urllib.parse import urlparse

from factlocate.errors import FactlocateError
from factlocate.net import reachable
from factlocate.io import atomic_path
from factlocate.models import cache_dir

ROME_DATA = "https://rome.baulab.info/data/dsets"
CANONICAL = {
    "counterfact.json": f"{ROME_DATA}/counterfact.json",
    "zsre_mend_eval.json": f"{ROME_DATA}/zsre_mend_eval.json",
    "attribute_snippets.json": f"{ROME_DATA}/attribute_snippets.json",
    "idf.npy": f"{ROME_DATA}/idf.npy",
    "tfidf_vocab.json": f"{ROME_DATA}/tfidf_vocab.json",
}


def data_dir() -> Path:
    path = cache_dir() / "data"
    path.mkdir(parents=True, exist_ok=True)
    return path


def cached(name: str) -> Path | None:
    path = data_dir() / name
    return path if path.exists() else None


def fetch(name: str, timeout: float = 60.0) -> Path:
    """The cached canonical file `name`, downloading it first if needed."""
    if name not in CANONICAL:
        raise FactlocateError(f"unknown data file {name!r}; known: {', '.join(CANONICAL)}")
    path = data_dir() / name
    if path.exists():
        return path
    url = CANONICAL[name]
    if not reachable(url):
        raise FactlocateError(
            f"{name} is not cached and {urlparse(url).hostname} is unreachable; "
            f"pass a local path (e.g. --dataset counterfact:PATH) or copy the file to {path}"
        )
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                while chunk := response.read(1 << 20):
                    f.write(chunk)
    except OSError as e:
        raise FactlocateError(f"downloading {url} failed ({e}); pass a local path instead") from e
    return path
