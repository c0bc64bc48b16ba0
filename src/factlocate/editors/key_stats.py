"""Key statistics: C = E[k kᵀ], the uncentred second moment of MLP keys at one layer.

ROME solves C u = k̄ (Appendix A). C is accumulated over every non-pad token of a
text corpus, each text truncated to `max_text_tokens` (the paper: Wikipedia
articles of up to 1,024 tokens, 100,000 of them), in float64 by default.

Corpora (`corpus=`):
  "wikitext2"            the shipped WikiText-2 raw test split (offline default; paragraphs as texts)
  "hf:wikitext-103"      Hugging Face `wikitext-103-raw-v1` train (needs the hub or the HF cache)
  "hf:wikipedia"         Hugging Face `wikimedia/wikipedia` 20231101.en, as in the paper
  a path                 a .txt file (one text per non-empty line), .json/.jsonl (strings or
                         {"text": ...}), or a folder of such files

Results are cached in `<cache>/stats/` under a name carrying model, layer,
corpus, token budget and dtype; the file stores that metadata too and `load`
checks it. A long run shows progress, saves its partial sums every
`save_every` texts, and resumes from them after an interrupt.
"""
from __future__ import annotations

import gzip
import hashlib
import json
import re
import time
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path

import torch
from jaxtyping import Float
from tqdm.auto import tqdm

from factlocate import arch, net, tokens
from factlocate.errors import FactlocateError
from factlocate.forward import Capture, control
from factlocate.identity import identity
from factlocate.io import atomic_path, read_json
from factlocate.models import cache_dir

DEFAULT_CORPUS = "wikitext2"
DTYPES = {"float64": torch.float64, "float32": torch.float32}


# ---------------------------------------------------------------- corpora


def _detokenize(line: str) -> str:
    """Undo WikiText's spacing (" @-@ ", " , ", " 's") so texts read like plain prose."""
    line = re.sub(r" @(.)@ ", r"\1", line)
    line = re.sub(r" ([.,;:!?)\]}'])", r"\1", line)
    line = re.sub(r"([(\[{]) ", r"\1", line)
    return line.replace(" n't", "n't").strip()


def _lines(lines) -> list[str]:
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
        return _lines(f)


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
    if corpus == DEFAULT_CORPUS:
        with resources.files("factlocate.data").joinpath("wikitext2-raw-test.txt.gz").open("rb") as f:
            return _lines(gzip.decompress(f.read()).decode("utf-8").splitlines())
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
        f"unknown corpus {corpus!r}: use {DEFAULT_CORPUS}, hf:wikitext-103, hf:wikipedia, a text file or a folder"
    )


def corpus_key(corpus: str) -> str:
    """A short file-name-safe name for a corpus."""
    if corpus == DEFAULT_CORPUS or corpus.startswith("hf:"):
        return corpus.replace(":", "-")
    p = Path(corpus).expanduser().resolve()
    return f"{p.stem}-{hashlib.sha1(str(p).encode()).hexdigest()[:8]}"


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


def _meta(model, layer, corpus, token_budget, dtype, max_text_tokens) -> StatsMeta:
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


def stats_path(meta: StatsMeta, model) -> Path:
    name = f"{meta.model}_L{meta.layer}_{meta.corpus}_{meta.token_budget}tok_{meta.dtype}.pt"
    return cache_dir() / "stats" / name


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
    want = _meta(model, layer, DEFAULT_CORPUS, 1, stats.meta.dtype, stats.meta.max_text_tokens)
    for field in ("model", "arch", "layer", "d_mlp"):
        got, expected = getattr(stats.meta, field), getattr(want, field)
        if got != expected:
            raise FactlocateError(
                f"the key statistics are for {field} {got!r}, not {expected!r}: "
                "compute statistics for this model and layer (factlocate stats)"
            )
    return stats


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
    if path is not None and len(layers) != 1:
        raise FactlocateError("an explicit statistics path takes a single layer")
    metas = {l: _meta(model, l, corpus, tokens_budget, dtype, max_text_tokens) for l in layers}
    paths = {l: Path(path) if path else stats_path(metas[l], model) for l in layers}
    done = {l: load(paths[l], metas[l]) for l in layers if paths[l].exists()}
    todo = [l for l in layers if l not in done]
    if todo:
        done.update(_accumulate(model, todo, corpus, metas, paths, batch_tokens, save_every, progress))
    return done[layers[0]] if single else done


def _accumulate(model, layers, corpus, metas, paths, batch_tokens, save_every, progress):
    meta0 = metas[layers[0]]
    budget, dt, max_len = meta0.token_budget, DTYPES[meta0.dtype], meta0.max_text_tokens
    n_ctx = getattr(model.cfg, "n_ctx", None) or max_len
    max_len = min(max_len, int(n_ctx))
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

    capture = Capture([arch.hook_mlp_key(l) for l in layers])
    texts = iter(corpus_texts(corpus))
    for _ in range(n_texts):  # skip what a previous run consumed
        next(texts, None)
    bar = tqdm(total=budget, initial=n_tokens, unit="tok", desc=f"key stats L{','.join(map(str, layers))}", disable=not progress)
    last_save = n_texts
    exhausted = False
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
            break
        start = time.perf_counter()
        ids, mask = tokens.batch(model, rows)
        with torch.no_grad():
            control.run(model, ids, hooks=capture.hooks, stop_at=max(layers) + 1, mask=mask)
        flat = mask.reshape(-1).bool()
        for l in layers:
            k = capture[arch.hook_mlp_key(l)].reshape(-1, d)[flat].to(dt).cpu()
            sums[l].addmm_(k.T, k)
        n_tokens += int(flat.sum())
        seconds += time.perf_counter() - start
        bar.update(int(flat.sum()))
        if n_texts - last_save >= save_every:
            for l in layers:
                _save(partial[l], payload(l))
            last_save = n_texts
    bar.close()
    if n_tokens == 0:
        raise FactlocateError(f"corpus {corpus!r} gave no tokens")
    out = {}
    for l in layers:
        _save(paths[l], payload(l))
        partial[l].unlink(missing_ok=True)
        out[l] = load(paths[l], metas[l])
    return out
