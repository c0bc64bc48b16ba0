"""Key statistics: C = E[k kᵀ], the uncentred second moment of MLP keys at one layer.

ROME solves C u = k̄ (Appendix A). C is accumulated over every non-pad token of a
text corpus, each text truncated to `max_text_tokens` (the paper: Wikipedia
articles of up to 1,024 tokens, 100,000 of them), in float64 by default.

Corpora (`corpus=`) are read by `factlocate.datasets.corpus`: the shipped WikiText-2 test split by
default, Hugging Face's WikiText-103 or Wikipedia, or local text files.

Results are cached in `<cache>/stats/` under a name carrying model, layer,
corpus, token budget and dtype; the file stores that metadata too and `load`
checks it. A long run shows progress, saves its partial sums every
`save_every` texts, and resumes from them after an interrupt.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from jaxtyping import Float
from tqdm.auto import tqdm

from factlocate import arch, tokens
from factlocate.datasets.corpus import DEFAULT_CORPUS, PERPLEXITY_CORPUS, corpus_key, corpus_texts
from factlocate.errors import FactlocateError
from factlocate.forward import Capture, control
from factlocate.identity import check_unedited, identity
from factlocate.io import atomic_path
from factlocate.models import cache_dir

DTYPES = {"float64": torch.float64, "float32": torch.float32}


# ---------------------------------------------------------------- statistics


@dataclass(frozen=True)
class StatsMeta:
    """What produced a covariance: checked before a cached file is used."""

    model: str  # the model's identity key: name and weight fingerprint
    arch: str  # the HF model type
    layer: int
    d_mlp: int
    corpus: str
    token_budget: int
    dtype: str
    max_text_tokens: int


@dataclass
class KeyStats:
    """C = sum(k kᵀ) / n_tokens over the corpus, with how it was made."""

    cov: Float[torch.Tensor, "d_mlp d_mlp"]
    meta: StatsMeta
    n_tokens: int
    n_texts: int
    seconds: float = 0.0

    @property
    def tokens_per_second(self) -> float:
        return self.n_tokens / self.seconds if self.seconds else float("nan")


def stats_meta(model, layer, corpus, token_budget, dtype, max_text_tokens) -> StatsMeta:
    return StatsMeta(
        model=identity(model).key,
        arch=arch.family(model),
        layer=arch.check_layer(model, layer),
        d_mlp=int(model.cfg.d_mlp),
        corpus=corpus_key(corpus),
        token_budget=int(token_budget),
        dtype=dtype,
        max_text_tokens=int(max_text_tokens),
    )


def file_name(meta: StatsMeta) -> str:
    return f"{meta.model}_L{meta.layer}_{meta.corpus}_{meta.token_budget}tok_{meta.dtype}.pt"


def stats_path(meta: StatsMeta, model=None) -> Path:
    return cache_dir() / "stats" / file_name(meta)


def _save(path: Path, payload: dict) -> None:
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load(path: str | Path, expect: StatsMeta | None = None) -> KeyStats:
    """Read a statistics file; if `expect` is given, its metadata and shape must match."""
    path = Path(path)
    if not path.exists():
        raise FactlocateError(f"statistics file {path} does not exist")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        meta = StatsMeta(**payload["meta"])
        cov = payload["sum"] / max(payload["n_tokens"], 1)
    except Exception as e:
        raise FactlocateError(f"{path} is not a factlocate statistics file ({e})") from e
    if expect is not None:
        for field in ("model", "arch", "layer", "d_mlp"):
            got, want = getattr(meta, field), getattr(expect, field)
            if got != want:
                raise FactlocateError(
                    f"statistics file {path.name} is for {field} {got!r}, not {want!r}: "
                    "delete it or compute statistics for this model and layer (factlocate stats)"
                )
    if cov.shape != (meta.d_mlp, meta.d_mlp) or (expect and cov.shape != (expect.d_mlp, expect.d_mlp)):
        raise FactlocateError(f"statistics file {path.name} holds a {tuple(cov.shape)} matrix, expected d_mlp x d_mlp")
    return KeyStats(cov, meta, int(payload["n_tokens"]), int(payload["n_texts"]), float(payload.get("seconds", 0.0)))


def check(stats: KeyStats, model, layer: int) -> KeyStats:
    """Refuse statistics made for another model, architecture, layer or MLP width."""
    want = stats_meta(model, layer, DEFAULT_CORPUS, 1, stats.meta.dtype, stats.meta.max_text_tokens)
    for field in ("model", "arch", "layer", "d_mlp"):
        got, expected = getattr(stats.meta, field), getattr(want, field)
        if got != expected:
            raise FactlocateError(
                f"the key statistics are for {field} {got!r}, not {expected!r}: "
                "compute statistics for this model and layer (factlocate stats)"
            )
    return stats


def check_corpus(corpus: str) -> None:
    """Key statistics never read the text perplexity is measured on (`datasets.corpus.PERPLEXITY_CORPUS`)."""
    if corpus == PERPLEXITY_CORPUS:
        raise FactlocateError(f"{PERPLEXITY_CORPUS} is the text perplexity is measured on; key statistics must not "
                              f"read it (use {DEFAULT_CORPUS})")


def key_stats(
    model,
    layers: int | list[int],
    corpus: str = DEFAULT_CORPUS,
    tokens_budget: int = 200_000,
    dtype: str = "float64",
    max_text_tokens: int = 1024,
    batch_tokens: int = 4096,
    save_every: int = 200,
    path: str | Path | None = None,
    progress: bool = True,
) -> KeyStats | dict[int, KeyStats]:
    """C at one layer (or at several, from one pass over the corpus), cached and resumable.

    `path` overrides the cache location (one layer only). A cached file is
    reused when its metadata matches, and rejected with an error when it does not.
    """
    single = isinstance(layers, int)
    layers = [layers] if single else sorted(set(layers))
    if dtype not in DTYPES:
        raise FactlocateError(f"statistics dtype {dtype!r} is not supported: use float64 or float32")
    if tokens_budget < 1:
        raise FactlocateError(f"the token budget must be positive, got {tokens_budget}")
    check_corpus(corpus)
    if path is not None and len(layers) != 1:
        raise FactlocateError("an explicit statistics path takes a single layer")
    metas = {l: stats_meta(model, l, corpus, tokens_budget, dtype, max_text_tokens) for l in layers}
    paths = {l: Path(path) if path else stats_path(metas[l], model) for l in layers}
    done = {l: load(paths[l], metas[l]) for l in layers if paths[l].exists()}
    todo = [l for l in layers if l not in done]
    if todo:
        check_unedited(model, f"key statistics for layers {todo} (`factlocate stats` makes them)")
        done.update(_accumulate(model, todo, corpus, metas, paths, batch_tokens, save_every, progress))
    return done[layers[0]] if single else done


def for_hparams(model, hp, progress: bool = True) -> dict[int, KeyStats]:
    """The statistics an editor's hyperparameters ask for (`hp.stats_request()`), made or read from the cache;
    none for an editor that reads none."""
    request = hp.stats_request()
    if request is None:
        return {}
    return key_stats(model, list(request.layers), corpus=request.corpus, tokens_budget=request.tokens,
                     dtype=request.dtype, progress=progress)


def text_batches(model, texts, budget: int, batch_tokens: int, max_len: int, skip: int = 0):
    """Yield (rows of token ids, texts consumed so far) in the order the statistics consume them.

    Texts are cut to `max_len` tokens; a batch closes at `batch_tokens` tokens or at the budget.
    """
    texts = iter(texts)
    for _ in range(skip):  # what a previous run consumed
        next(texts, None)
    n_tokens, n_texts, exhausted = 0, skip, False
    while n_tokens < budget and not exhausted:
        rows = []
        while sum(map(len, rows)) < batch_tokens and n_tokens + sum(map(len, rows)) < budget:
            t = next(texts, None)
            if t is None:
                exhausted = True
                break
            ids = tokens.encode(model, t)[:max_len]
            if len(ids) > 1:
                rows.append(ids)
            n_texts += 1
        if not rows:
            return
        n_tokens += sum(map(len, rows))
        yield rows, n_texts


def max_text_len(model, max_text_tokens: int) -> int:
    n_ctx = getattr(model.cfg, "n_ctx", None) or max_text_tokens
    return min(max_text_tokens, int(n_ctx))


@torch.no_grad()
def batch_sums(model, layers: list[int], rows: list[list[int]], dtype: str) -> tuple[dict[int, torch.Tensor], int]:
    """Σ k kᵀ at each layer over every token of one batch of token rows, and how many tokens."""
    d, dt = int(model.cfg.d_mlp), DTYPES[dtype]
    capture = Capture([arch.hook_mlp_key(l) for l in layers])
    ids, mask = tokens.batch(model, rows)
    control.run(model, ids, hooks=capture.hooks, stop_at=max(layers) + 1, mask=mask)
    flat = mask.reshape(-1).bool()
    out = {}
    for l in layers:
        k = capture[arch.hook_mlp_key(l)].reshape(-1, d)[flat].to(dt).cpu()
        out[l] = k.T @ k
    return out, int(flat.sum())


def shard_sums(model, layers: list[int], batches: list[list[list[int]]], dtype: str) -> dict:
    """The sums of several batches (one Ray shard): {"sums": {layer: Σ k kᵀ}, "n_tokens": int}."""
    d = int(model.cfg.d_mlp)
    sums = {l: torch.zeros(d, d, dtype=DTYPES[dtype]) for l in layers}
    n = 0
    for rows in batches:
        part, count = batch_sums(model, layers, rows, dtype)
        for l in layers:
            sums[l] += part[l]
        n += count
    return {"sums": sums, "n_tokens": n}


def _accumulate(model, layers, corpus, metas, paths, batch_tokens, save_every, progress):
    meta0 = metas[layers[0]]
    budget, dt = meta0.token_budget, DTYPES[meta0.dtype]
    max_len = max_text_len(model, meta0.max_text_tokens)
    partial = {l: paths[l].with_suffix(".partial.pt") for l in layers}
    d = int(model.cfg.d_mlp)
    sums = {l: torch.zeros(d, d, dtype=dt) for l in layers}
    n_tokens = n_texts = 0
    seconds = 0.0
    if all(p.exists() for p in partial.values()):  # resume
        states = {l: torch.load(partial[l], map_location="cpu", weights_only=True) for l in layers}
        if len({(s["n_tokens"], s["n_texts"]) for s in states.values()}) == 1:
            sums = {l: states[l]["sum"] for l in layers}
            n_tokens, n_texts = states[layers[0]]["n_tokens"], states[layers[0]]["n_texts"]
            seconds = states[layers[0]].get("seconds", 0.0)

    def payload(l):
        return {"meta": asdict(metas[l]), "sum": sums[l], "n_tokens": n_tokens, "n_texts": n_texts, "seconds": seconds}

    bar = tqdm(total=budget, initial=n_tokens, unit="tok", desc=f"key stats L{','.join(map(str, layers))}",
               disable=not progress)
    last_save = n_texts
    for rows, n_texts in text_batches(model, corpus_texts(corpus), budget - n_tokens, batch_tokens, max_len, n_texts):
        start = time.perf_counter()
        part, count = batch_sums(model, layers, rows, meta0.dtype)
        for l in layers:
            sums[l] += part[l]
        n_tokens += count
        seconds += time.perf_counter() - start
        bar.update(count)
        if n_texts - last_save >= save_every:
            for l in layers:
                _save(partial[l], payload(l))
            last_save = n_texts
    bar.close()
    return write_stats(layers, corpus, metas, paths, payload, n_tokens, partial)


def write_stats(layers, corpus, metas, paths, payload, n_tokens, partial=None):
    if n_tokens == 0:
        raise FactlocateError(f"corpus {corpus!r} gave no tokens")
    out = {}
    for l in layers:
        _save(paths[l], payload(l))
        if partial:
            partial[l].unlink(missing_ok=True)
        out[l] = load(paths[l], metas[l])
    return out
