"""Reuse the corrupted pass's keys and values for positions a restoration cannot change.

Restoring a site at token t changes nothing at positions before t (attention is
causal), so every row of that site equals the corrupted pass there, in every
layer. The batched engine therefore runs only positions t.. of such rows and
hands the model, as a Hugging Face KV cache, the corrupted pass's keys and
values for positions 0..t-1 (HF derives the position offset from the cache
length). That is the same computation as the full forward, in fewer FLOPs.
"""
from __future__ import annotations

import copy

import torch
from jaxtyping import Int


def prefix_cache(cache, rows: Int[torch.Tensor, "n"] | list[Int[torch.Tensor, "n_layer"]], length: int):
    """A copy of `cache` holding batch entries `rows` and only the first `length` positions.

    `cache` is the HF cache of a full corrupted pass (one entry per noise sample);
    the result has one entry per row of a restored batch. `rows` may also be a
    list with one index tensor per layer, for batches that grow from layer to
    layer (`batched`). None if `length` is 0.
    """
    if length == 0:
        return None
    out = copy.copy(cache)
    out.layers = []
    for k, layer in enumerate(cache.layers):
        part = copy.copy(layer)
        if layer.is_initialized:
            index = rows[k] if isinstance(rows, list) else rows
            part.keys = layer.keys[index, :, :length]
            part.values = layer.values[index, :, :length]
            if hasattr(part, "cumulative_length"):  # sliding-window layers count every token seen
                part.cumulative_length = length
        out.layers.append(part)
    return out
