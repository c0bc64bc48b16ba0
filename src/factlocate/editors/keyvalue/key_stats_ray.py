"""Key statistics on Ray workers (`factlocate stats --ray`): the single-process run's batches, planned on one
worker, summed in shards on many, and added up on the driver in float64 in shard order, so the result equals
`key_stats.key_stats` up to summation order and is written to the same cache files."""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import torch

from factlocate import tokens
from factlocate.datasets.corpus import DEFAULT_CORPUS, corpus_texts
from factlocate.editors.keyvalue.key_stats import (DTYPES, KeyStats, check_corpus, file_name, load, max_text_len,
                                                   shard_sums, stats_meta, text_batches, write_stats)
from factlocate.errors import FactlocateError
from factlocate.models import cache_dir


def plan(model, layers: list[int], corpus: str, tokens_budget: int, dtype: str, max_text_tokens: int,
         batch_tokens: int) -> dict:
    """What a sharded run needs from one worker: the metadata, and each batch as a [start, end) range of texts."""
    metas = {l: stats_meta(model, l, corpus, tokens_budget, dtype, max_text_tokens) for l in layers}
    ranges, first = [], 0
    for _, n_texts in text_batches(model, corpus_texts(corpus), tokens_budget, batch_tokens,
                               max_text_len(model, max_text_tokens)):
        ranges.append((first, n_texts))
        first = n_texts
    return {"metas": metas, "ranges": ranges, "max_len": max_text_len(model, max_text_tokens)}


def shard_texts(model, layers: list[int], texts: list[list[str]], dtype: str, max_len: int) -> dict:
    """`shard_sums` over batches given as texts (each batch the texts of one planned range)."""
    batches = []
    for batch in texts:
        rows = [ids for ids in (tokens.encode(model, t)[:max_len] for t in batch) if len(ids) > 1]
        batches.append(rows)
    return shard_sums(model, layers, batches, dtype)


def key_stats_on(pool, layers: list[int], corpus: str = DEFAULT_CORPUS, tokens_budget: int = 200_000,
                 dtype: str = "float64", max_text_tokens: int = 1024, batch_tokens: int = 4096,
                 batches_per_shard: int = 8, path: str | Path | None = None) -> dict[int, KeyStats]:
    """`key_stats` with the batches spread over Ray workers; the driver sums the shards in float64.

    The batches are the single-process run's (planned on one worker), so the result equals the
    single-process statistics up to summation order. Files and metadata are the same.
    """
    layers = sorted(set(layers))
    check_corpus(corpus)
    if path is not None and len(layers) != 1:
        raise FactlocateError("an explicit statistics path takes a single layer")
    (_, p), = pool.map("stats_plan", [("plan", dict(layers=layers, corpus=corpus, tokens_budget=tokens_budget,
                                                      dtype=dtype, max_text_tokens=max_text_tokens,
                                                      batch_tokens=batch_tokens))], desc="plan")
    metas, ranges = p["metas"], p["ranges"]
    paths = {l: Path(path) if path else cache_dir() / "stats" / file_name(metas[l]) for l in layers}
    done = {l: load(paths[l], metas[l]) for l in layers if paths[l].exists()}
    todo = [l for l in layers if l not in done]
    if not todo:
        return done
    texts = list(corpus_texts(corpus)) if not corpus.startswith("hf:") else None
    if texts is None:
        raise FactlocateError("sharded statistics read the corpus on the driver: use a shipped or local corpus")
    shards = [ranges[i : i + batches_per_shard] for i in range(0, len(ranges), batches_per_shard)]
    items = [(k, dict(layers=todo, texts=[texts[a:b] for a, b in shard], dtype=dtype, max_len=p["max_len"]))
             for k, shard in enumerate(shards)]
    results = dict(pool.map("stats_shard", items, desc="key stats shards"))
    d = next(iter(results.values()))["sums"][todo[0]].shape[0]
    sums = {l: torch.zeros(d, d, dtype=torch.float64) for l in todo}
    n_tokens = 0
    for k in range(len(shards)):  # in shard order
        for l in todo:
            sums[l] += results[k]["sums"][l].to(torch.float64)
        n_tokens += results[k]["n_tokens"]
    n_texts = ranges[-1][1] if ranges else 0

    def payload(l):
        return {"meta": asdict(metas[l]), "sum": sums[l].to(DTYPES[dtype]), "n_tokens": n_tokens,
                "n_texts": n_texts, "seconds": 0.0}

    done.update(write_stats(todo, corpus, metas, paths, payload, n_tokens))
    return done
