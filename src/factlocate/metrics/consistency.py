"""RS (reference score): TF-IDF cosine between generations and Wikipedia snippets about the new target.

The reference texts are ROME's attribute snippets for (relation_id, target_new.id).
The vectorizer uses ROME's `idf.npy` and `tfidf_vocab.json` when present (they were
computed on the snippets); with the snippets but without those files it is fitted
on the snippets. Without the snippets RS is unavailable (None, shown as n/a), never 0.
"""
from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer

from factlocate.errors import FactlocateError


def fit_vectorizer(texts: list[str]) -> TfidfVectorizer:
    """A TF-IDF vectorizer fitted on a corpus (sklearn defaults, as in ROME)."""
    if not texts:
        raise FactlocateError("cannot fit a TF-IDF vectorizer on no texts")
    return TfidfVectorizer().fit(texts)


def load_vectorizer(idf_path: str | Path, vocab_path: str | Path) -> TfidfVectorizer:
    """ROME's vectorizer: sklearn defaults with a precomputed idf and vocabulary."""
    idf = np.load(idf_path)
    vocab = json.loads(Path(vocab_path).read_text())
    if len(idf) != len(vocab):
        raise FactlocateError(f"{idf_path} has {len(idf)} idf weights but {vocab_path} has {len(vocab)} words")
    vec = TfidfVectorizer()
    vec.vocabulary_ = vocab
    vec.idf_ = idf
    return vec


def tfidf_similarity(text_a: str, text_b: str, vec: TfidfVectorizer) -> float:
    """Cosine similarity of the TF-IDF vectors of two texts (0 if either has no known word)."""
    a, b = vec.transform([text_a, text_b]).toarray()
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    return float(a @ b / (na * nb)) if na and nb else 0.0


@dataclass
class Reference:
    """Attribute snippets by relation and target id, and the vectorizer to compare against them."""

    snippets: dict[str, dict[str, list[str]]]
    vectorizer: TfidfVectorizer

    def texts(self, relation_id: str | None, target_id: str | None) -> list[str]:
        return list(self.snippets.get(relation_id or "", {}).get(target_id or "", []))

    def score(self, generations: list[str], relation_id: str | None, target_id: str | None) -> float | None:
        """RS of one case, or None when there are no snippets for its (relation, target)."""
        refs = self.texts(relation_id, target_id)
        if not refs or not generations:
            return None
        return tfidf_similarity(" ".join(generations), " ".join(refs), self.vectorizer)


def read_snippets(path: str | Path) -> dict[str, dict[str, list[str]]]:
    """ROME's attribute_snippets.json: [{relation_id, target_id, samples: [{text, name}]}]."""
    out: dict = defaultdict(lambda: defaultdict(list))
    for i, el in enumerate(json.loads(Path(path).read_text())):
        try:
            for sample in el["samples"]:
                out[el["relation_id"]][el["target_id"]].append(sample["text"])
        except (KeyError, TypeError) as e:
            raise FactlocateError(f"{path} record {i}: missing field {e}") from e
    return {r: dict(t) for r, t in out.items()}


def load_reference(snippets_path, idf_path=None, vocab_path=None) -> Reference:
    snippets = read_snippets(snippets_path)
    if idf_path and vocab_path and Path(idf_path).exists() and Path(vocab_path).exists():
        vec = load_vectorizer(idf_path, vocab_path)
    else:
        vec = fit_vectorizer([t for by_target in snippets.values() for ts in by_target.values() for t in ts])
    return Reference(snippets, vec)


def canonical_reference(allow_download: bool = True) -> tuple[Reference | None, str]:
    """ROME's snippets and vectorizer from the cache (downloading them where reachable).

    Returns (None, reason) when they are unavailable, so RS is reported as n/a.
    """
    from factlocate.datasets import download

    paths = {}
    for name in ("attribute_snippets.json", "idf.npy", "tfidf_vocab.json"):
        path = download.cached(name)
        if path is None and allow_download:
            try:
                path = download.fetch(name)
            except FactlocateError as e:
                if name == "attribute_snippets.json":
                    return None, str(e)
        paths[name] = path
    if paths["attribute_snippets.json"] is None:
        return None, "attribute_snippets.json is not cached"
    return load_reference(paths["attribute_snippets.json"], paths["idf.npy"], paths["tfidf_vocab.json"]), ""
