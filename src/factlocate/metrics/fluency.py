"""GE (generation entropy): the fluency metric of ROME's CounterFact evaluation.

Per text, the weighted n-gram entropies (2/3)*H2 and (4/3)*H3 are averaged, where
Hn = -sum f log2 f over the relative frequencies f of the text's word n-grams.
GE is the mean over texts (reported x100, as in the paper).

Words come from `nltk.word_tokenize(text, preserve_line=True)`, which needs no
downloaded data. The original code ran the same tokenizer after punkt sentence
splitting; the two differ only in how a period at the end of a sentence inside
the text is split off ("Paris." stays one word here), which shifts GE slightly.
"""
from __future__ import annotations

import math
from collections import Counter

import nltk

NS = (2, 3)
WEIGHTS = (2 / 3, 4 / 3)


def words(text: str) -> list[str]:
    return nltk.word_tokenize(text, preserve_line=True)


def ngram_entropy(tokens: list[str], n: int) -> float:
    """Entropy in bits of the frequency distribution of the n-grams of `tokens` (0 if none)."""
    counts = Counter(zip(*(tokens[i:] for i in range(n))))
    total = sum(counts.values())
    return -sum(c / total * math.log2(c / total) for c in counts.values()) if total else 0.0


def text_entropy(text: str) -> float:
    """mean((2/3) * H2, (4/3) * H3) of one text."""
    tokens = words(text)
    return sum(w * ngram_entropy(tokens, n) for n, w in zip(NS, WEIGHTS)) / len(NS)


def n_gram_entropy(texts: list[str]) -> float:
    """GE of a set of generations: the mean of `text_entropy` over texts."""
    if not texts:
        return float("nan")
    return sum(text_entropy(t) for t in texts) / len(texts)
