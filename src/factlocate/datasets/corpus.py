"""Text corpora: what key statistics are accumulated over, and what perplexity is read on.

    corpus_texts("wikitext2")          the shipped WikiText-2 raw test split (offline default; paragraphs), less
                                       its last `HELDOUT` paragraphs: the text key statistics are built from
    corpus_texts("wikitext2-heldout")  those last paragraphs: the text perplexity is read on, never C0's
    corpus_texts("hf:wikitext-103")    Hugging Face `wikitext-103-raw-v1` train (needs the hub or the HF cache)
    corpus_texts("hf:wikipedia")       Hugging Face `wikimedia/wikipedia` 20231101.en, as in the paper
    corpus_texts("/path")              a .txt file (one text per non-empty line), .json/.jsonl (strings or
                                       {"text": ...}), or a folder of such files
"""
from __future__ import annotations

import gzip
import hashlib
import json
import re
from importlib import resources
from pathlib import Path

from factlocate import net
from factlocate.errors import FactlocateError
from factlocate.io import read_json

DEFAULT_CORPUS = "wikitext2"
PERPLEXITY_CORPUS = "wikitext2-heldout"
HELDOUT = 200  # paragraphs (about 14,500 words): enough for perplexity's 4,096-token slice, far past any C0 budget


def _detokenize(line: str) -> str:
    """Undo WikiText's spacing (" @-@ ", " , ", " 's") so texts read like plain prose."""
    line = re.sub(r" @(.)@ ", r"\1", line)
    line = re.sub(r" ([.,;:!?)\]}'])", r"\1", line)
    line = re.sub(r"([(\[{]) ", r"\1", line)
    return line.replace(" n't", "n't").strip()


def text_lines(lines) -> list[str]:
    """Non-empty lines that are not WikiText headings (" = Title = ")."""
    out = []
    for line in lines:
        line = line.strip()
        if line and not re.fullmatch(r"=+ .* =+", line):
            out.append(_detokenize(line))
    return out


def _read_file(path: Path) -> list[str]:
    if path.suffix in (".json", ".jsonl"):
        if path.suffix == ".jsonl":
            rows = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]
        else:
            rows = read_json(path)
        return [r["text"] if isinstance(r, dict) else str(r) for r in rows]
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        return text_lines(f)


def _hf_texts(name: str):
    """Stream texts from a Hugging Face dataset (needs the hub or the local HF cache)."""
    from datasets import load_dataset

    repo, config, split = {
        "wikitext-103": ("Salesforce/wikitext", "wikitext-103-raw-v1", "train"),
        "wikipedia": ("wikimedia/wikipedia", "20231101.en", "train"),
    }.get(name, (name, None, "train"))
    if not net.reachable(net.hub_url()):
        try:
            return (r["text"] for r in load_dataset(repo, config, split=split))
        except Exception as e:
            raise FactlocateError(
                f"dataset {repo} is not cached and the hub is unreachable: use --corpus {DEFAULT_CORPUS} "
                "or a local text file"
            ) from e
    return (r["text"] for r in load_dataset(repo, config, split=split, streaming=True))


def corpus_texts(corpus: str = DEFAULT_CORPUS):
    """An iterable of texts for a corpus name or path (see the module docstring)."""
    if corpus in (DEFAULT_CORPUS, PERPLEXITY_CORPUS):
        with resources.files("factlocate.data").joinpath("wikitext2-raw-test.txt.gz").open("rb") as f:
            texts = text_lines(gzip.decompress(f.read()).decode("utf-8").splitlines())
        head = texts[:-HELDOUT]
        if corpus == DEFAULT_CORPUS:
            return head
        seen = set(head)
        return [t for t in texts[-HELDOUT:] if t not in seen]  # a paragraph repeated earlier is C0's text too
    if corpus.startswith("hf:"):
        return (t for t in _hf_texts(corpus[3:]) if t and t.strip())
    path = Path(corpus).expanduser()
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix in (".txt", ".gz", ".json", ".jsonl"))
        if not files:
            raise FactlocateError(f"folder {path} holds no .txt, .json or .jsonl files")
        return [t for p in files for t in _read_file(p)]
    if path.is_file():
        return _read_file(path)
    raise FactlocateError(
        f"unknown corpus {corpus!r}: use {DEFAULT_CORPUS}, {PERPLEXITY_CORPUS}, hf:wikitext-103, hf:wikipedia, a text "
        "file or a folder"
    )


def corpus_key(corpus: str) -> str:
    """A short file-name-safe name for a corpus."""
    if corpus in (DEFAULT_CORPUS, PERPLEXITY_CORPUS) or corpus.startswith("hf:"):
        return corpus.replace(":", "-")
    p = Path(corpus).expanduser().resolve()
    return f"{p.stem}-{hashlib.sha1(str(p).encode()).hexdigest()[:8]}"
