"""Key/value reuse through Hugging Face caches, built with the public cache API and checked before use.

Three computations reuse keys and values instead of recomputing them:

* batched tracing: rows restored at token t run only positions t.., reading the
  corrupted pass's keys and values of positions 0..t-1 (`prefix`);
* the shared-prompt scorer: each prompt runs once and its cache serves every target;
* generation: incremental decoding.

Caches are made only through transformers' public API: an empty
`DynamicCache(config=...)` handed to a forward as `past_key_values` is filled
by it; `prefix` builds a cache from per-layer key and value tensors with the
`DynamicCache` constructor; `layers` reads them back by iterating a cache.

Each kind of reuse is checked once per loaded model (`verified`) against the
plain computation on a small probe. On a mismatch it warns once, in one line
naming the library versions, and the caller takes the plain path, so no number
from an unchecked reuse is ever returned. (transformers 5.24.0 passes the cache
to attention under the name `cache`, which transformer-lens 4.3.0's attention
bridge does not read: there the checks fail and every path runs plainly.)
FACTLOCATE_KV_REUSE=0 turns reuse (and every other shortcut checked through `verified`) off without checking.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Callable

import torch

from factlocate import arch
from factlocate.identity import state

log = logging.getLogger("factlocate")
ENV = "FACTLOCATE_KV_REUSE"
TOLERANCE = 1e-4  # largest |difference| of log-probabilities or probabilities a check accepts


class CacheIncomplete(RuntimeError):
    """A cache lacks some positions' keys and values (a sliding window dropped them): reuse cannot serve."""


def empty(model):
    """A cache for `model`, to pass as `past_key_values` (the forward fills it)."""
    from transformers import DynamicCache

    return DynamicCache(config=arch.hf_model(model).config)


def layers(cache) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(keys, values) of every layer, each [batch, heads, pos, d_head] (None where a layer holds nothing)."""
    return [(entry[0], entry[1]) for entry in cache]


def holds_all(cache, n_positions: int) -> bool:
    """Whether every layer holds all `n_positions` (a sliding window may have dropped early ones)."""
    return all(k is not None and k.shape[-2] == n_positions for k, _ in layers(cache))


def from_layers(model, per_layer: list[tuple[torch.Tensor, torch.Tensor]]):
    """A cache holding the given keys and values, one (keys, values) pair per layer (its own batch each)."""
    from transformers import DynamicCache

    return DynamicCache(per_layer, config=arch.hf_model(model).config)


def prefix(model, per_layer: list[tuple[torch.Tensor, torch.Tensor]], rows: torch.Tensor, length: int):
    """A cache holding positions 0..length-1 of batch entries `rows` of `per_layer` (None for length 0)."""
    if length == 0:
        return None
    if any(k is None for k, _ in per_layer):
        raise ValueError("the cache holds no keys and values to take a prefix of")
    rows = torch.as_tensor(rows)
    return from_layers(model, [(k[rows.to(k.device), :, :length], v[rows.to(v.device), :, :length])
                               for k, v in per_layer])


def injected_prefix(model, per_layer: list[tuple[torch.Tensor, torch.Tensor]], rows: torch.Tensor, length: int,
                    layer: int):
    """`prefix` for a run injected at block `layer` (`forward.control.Inject`): batch entries `rows` from
    `layer` on, and below it only the first of them, since blocks below `layer` run on one placeholder row."""
    rows = torch.as_tensor(rows)
    return from_layers(model, [(k[(rows if l >= layer else rows[:1]).to(k.device), :, :length],
                                v[(rows if l >= layer else rows[:1]).to(v.device), :, :length])
                               for l, (k, v) in enumerate(per_layer)])


def versions() -> str:
    import transformer_lens
    import transformers

    tl = getattr(transformer_lens, "__version__", None)
    if tl is None:
        from importlib.metadata import version

        tl = version("transformer-lens")
    return f"transformers {transformers.__version__}, transformer-lens {tl}, torch {torch.__version__}"


def verified(model, name: str, probe: Callable[[], tuple[torch.Tensor, ...]], tolerance: float = TOLERANCE) -> bool:
    """Whether reuse `name` may run on `model`: `probe()` returns (reused, plain) results to compare.

    A probe may return a third result, the plain computation again in another batch layout: how far the
    plain path disagrees with itself (float rounding, which an edited model's large activations amplify)
    is then allowed on top of `tolerance`. The verdict is made once per model and kept on it. A failed
    check warns once.
    """
    if os.environ.get(ENV, "1") == "0":
        return False
    checks = state(model).checks
    if name not in checks:
        try:
            with torch.no_grad():
                reused, plain, *again = probe()
            diff = float((reused.float() - plain.float()).abs().max())
            floor = float((again[0].float() - plain.float()).abs().max()) if again else 0.0
            ok = diff <= tolerance + floor
            detail = f"largest difference {diff:.2e}, allowed {tolerance:.0e}" + (
                f" + {floor:.2e} (two plain layouts)" if again else "")
        except Exception as e:  # a reuse that cannot even run is a failed check, not a crash
            ok, detail = False, f"{type(e).__name__}: {e}"
        checks[name] = ok
        if not ok:
            log.warning(f"factlocate: {name}: the faster path (a reused KV cache, or a shortcut) does not match "
                        f"the plain path under {versions()} ({detail}); using the plain path (exact, slower)")
    return checks[name]


def probe_ids(model, n: int = 6) -> list[int]:
    """A short real-text prompt for probes."""
    from factlocate import tokens

    ids = tokens.encode(model, "The Eiffel Tower is located in the city of Paris")
    return ids[:n]
